#!/usr/bin/python3
"""Eclipse Paho (Python) scenarios against a broker on 127.0.0.1, for tests/interop/paho_test.ts.

Usage: /usr/bin/python3 paho_client.py <scenario> <port> <v311|v5>
Scenarios: pubsub, retained, will. Prints one JSON object on stdout; every wait is bounded.
Written for the paho-mqtt 1.6 API (Debian 12's python3-paho-mqtt) and also runs on paho-mqtt 2.x.
"""
import json
import sys
import threading
import time

import paho.mqtt
import paho.mqtt.client as mqtt

try:
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties
except ImportError:  # very old paho without MQTT 5
    PacketTypes = None
    Properties = None

WAIT = 5.0
HOST = "127.0.0.1"


def fail(message):
    print(json.dumps({"error": message, "paho": paho.mqtt.__version__}))
    sys.exit(1)


def rc_value(code):
    """An int from a paho 1.6 int / ReasonCodes / paho 2 ReasonCode."""
    return code.value if hasattr(code, "value") else int(code)


class Client:
    """A paho client with its own network thread, a CONNACK event, SUBACK events and an inbox."""

    def __init__(self, port, version, client_id, will=None):
        self.version = version
        self.port = port
        kwargs = {"client_id": client_id, "protocol": mqtt.MQTTv5 if version == "v5" else mqtt.MQTTv311}
        if hasattr(mqtt, "CallbackAPIVersion"):  # paho 2.x: keep the 1.x callback signatures
            kwargs["callback_api_version"] = mqtt.CallbackAPIVersion.VERSION1
        if version != "v5":
            kwargs["clean_session"] = True
        self.client = mqtt.Client(**kwargs)
        self.connected = threading.Event()
        self.connack = None
        self.subacks = {}
        self.suback_event = threading.Condition()
        self.messages = []
        self.message_event = threading.Condition()
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        if will is not None:
            self.client.will_set(will["topic"], will["payload"], qos=will["qos"], retain=will.get("retain", False))

    def _on_connect(self, _client, _userdata, flags, rc, properties=None):
        self.connack = {"rc": rc_value(rc), "session_present": bool(flags.get("session present", 0))}
        self.connected.set()

    def _on_subscribe(self, _client, _userdata, mid, granted, properties=None):
        with self.suback_event:
            self.subacks[mid] = [rc_value(g) for g in granted]
            self.suback_event.notify_all()

    def _on_message(self, _client, _userdata, msg):
        entry = {
            "topic": msg.topic,
            "payload": msg.payload.decode("utf-8"),
            "qos": msg.qos,
            "retain": bool(msg.retain),
        }
        props = getattr(msg, "properties", None)
        if props is not None and hasattr(props, "UserProperty"):
            entry["user_properties"] = [list(p) for p in props.UserProperty]
        if props is not None and hasattr(props, "ContentType"):
            entry["content_type"] = props.ContentType
        with self.message_event:
            self.messages.append(entry)
            self.message_event.notify_all()

    def connect(self):
        if self.version == "v5":
            self.client.connect(HOST, self.port, keepalive=30, clean_start=True)
        else:
            self.client.connect(HOST, self.port, keepalive=30)
        self.client.loop_start()
        if not self.connected.wait(WAIT):
            fail("no CONNACK within %.0f s" % WAIT)
        if self.connack["rc"] != 0:
            fail("CONNACK refused: %r" % self.connack)
        return self

    def subscribe(self, topic, qos):
        rc, mid = self.client.subscribe(topic, qos)
        if rc != mqtt.MQTT_ERR_SUCCESS:
            fail("subscribe %s failed: %d" % (topic, rc))
        with self.suback_event:
            if not self.suback_event.wait_for(lambda: mid in self.subacks, WAIT):
                fail("no SUBACK for %s" % topic)
            return self.subacks[mid]

    def publish(self, topic, payload, qos, retain=False, properties=None):
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            fail("publish %s failed: %d" % (topic, info.rc))
        # Returns once PUBACK (QoS 1) / PUBCOMP (QoS 2) arrived, or the QoS 0 packet was written.
        info.wait_for_publish(WAIT)
        if not info.is_published():
            fail("publish %s at QoS %d not acknowledged within %.0f s" % (topic, qos, WAIT))

    def wait_messages(self, count, timeout=WAIT):
        with self.message_event:
            self.message_event.wait_for(lambda: len(self.messages) >= count, timeout)
            return list(self.messages)

    def disconnect(self):
        self.client.disconnect()
        self.client.loop_stop()


def user_props(pairs):
    if Properties is None:
        return None
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = pairs
    props.ContentType = "text/plain"
    return props


def scenario_pubsub(port, version):
    """Subscriptions at QoS 1 and 2; publishes at QoS 0, 1, 2 to each; reports what arrived."""
    sub = Client(port, version, "paho-sub-" + version).connect()
    pub = Client(port, version, "paho-pub-" + version).connect()
    granted = [sub.subscribe("paho/s1", 1), sub.subscribe("paho/s2", 2)]
    props = user_props([("origin", "paho"), ("n", "1")]) if version == "v5" else None
    for target in ("paho/s1", "paho/s2"):
        for qos in (0, 1, 2):
            pub.publish(target, "q%d" % qos, qos, properties=props)
    received = sub.wait_messages(6)
    time.sleep(0.2)  # anything beyond 6 would be a duplicate
    received = list(sub.messages)
    pub.disconnect()
    sub.disconnect()
    return {"granted": granted, "received": received}


def scenario_retained(port, version):
    """Retained set/replace/delete, then a late subscriber reports what it got."""
    pub = Client(port, version, "paho-rpub-" + version).connect()
    pub.publish("pr/a", "old", 1, retain=True)
    pub.publish("pr/a", "new", 2, retain=True)
    pub.publish("pr/b", "doomed", 1, retain=True)
    pub.publish("pr/b", "", 1, retain=True)
    pub.publish("pr/c", "plain", 1, retain=False)
    late = Client(port, version, "paho-rlate-" + version).connect()
    late.subscribe("pr/#", 2)
    late.wait_messages(1)
    time.sleep(0.3)
    received = list(late.messages)
    pub.publish("pr/a", "live", 1, retain=True)
    live = late.wait_messages(len(received) + 1)[len(received):]
    late.disconnect()
    pub.disconnect()
    return {"received": received, "live": live}


def scenario_will(port, version):
    """A client with a will disconnects politely, another one's socket dies; the watcher reports."""
    watcher = Client(port, version, "paho-watch-" + version).connect()
    watcher.subscribe("pw/#", 1)
    polite = Client(port, version, "paho-polite-" + version,
                    will={"topic": "pw/polite", "payload": "should not arrive", "qos": 1}).connect()
    polite.disconnect()
    time.sleep(0.1)
    doomed = Client(port, version, "paho-doomed-" + version,
                    will={"topic": "pw/doomed", "payload": "gone", "qos": 1, "retain": False}).connect()
    # Abnormal close: stop the network thread and drop the socket without DISCONNECT.
    sock = doomed.client.socket()
    doomed.client.loop_stop()
    sock.close()
    watcher.wait_messages(1)
    time.sleep(0.3)
    received = list(watcher.messages)
    watcher.disconnect()
    return {"received": received}


def main():
    if len(sys.argv) != 4 or sys.argv[3] not in ("v311", "v5"):
        fail("usage: paho_client.py <pubsub|retained|will> <port> <v311|v5>")
    scenario, port, version = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    scenarios = {"pubsub": scenario_pubsub, "retained": scenario_retained, "will": scenario_will}
    if scenario not in scenarios:
        fail("unknown scenario %s" % scenario)
    result = scenarios[scenario](port, version)
    result["paho"] = paho.mqtt.__version__
    print(json.dumps(result))


if __name__ == "__main__":
    main()
