import { ReasonCode } from "./reason_codes.ts";

/**
 * The one error type of the protocol layers. It carries the MQTT 5 reason code that the connection
 * sends back (CONNACK or DISCONNECT at v5; a closed socket at 3.1.1), and the spec statement it enforces.
 */
export class MqttError extends Error {
  override readonly name = "MqttError";
  constructor(
    readonly reasonCode: number,
    message: string,
    readonly statement?: string,
  ) {
    super(statement ? `${message} ${statement}` : message);
  }
}

/** A packet that cannot be parsed: [MQTT-1.5.4-1] and friends; reason 0x81. */
export function malformed(message: string, statement?: string): MqttError {
  return new MqttError(ReasonCode.MalformedPacket, message, statement);
}

/** A well-formed packet that breaks a protocol rule; reason 0x82. */
export function protocolError(message: string, statement?: string): MqttError {
  return new MqttError(ReasonCode.ProtocolError, message, statement);
}

/**
 * A CONNECT whose protocol name and level we do not speak [MQTT-3.1.2-2]. `level` tells the connection
 * how to answer: a v5 CONNACK 0x84 to a level-5 client, the 3.1.1 form 0x01 to anything else.
 */
export class UnsupportedProtocolError extends MqttError {
  constructor(message: string, readonly level: number) {
    super(ReasonCode.UnsupportedProtocolVersion, message, "[MQTT-3.1.2-2]");
  }
}
