// mochi-mqtt for `deno task bench`: one TCP listener on the given address, every client allowed, nothing
// persisted unless -store names a bbolt file (the durable case). Go sockets have TCP_NODELAY set by
// default, like every other broker in the benchmark. Prints "LISTENING <addr>" once it accepts.
package main

import (
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"github.com/mochi-mqtt/server/v2/listeners"
	"go.etcd.io/bbolt"
)

func main() {
	address := flag.String("addr", "127.0.0.1:1883", "listen address")
	store := flag.String("store", "", "bbolt file for sessions and messages (empty: in memory only)")
	flag.Parse()

	server := mqtt.New(&mqtt.Options{
		InlineClient: false,
		Logger:       slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err := server.AddHook(new(auth.AllowHook), nil); err != nil {
		log.Fatal(err)
	}
	if *store != "" {
		// bbolt syncs every transaction; mochi writes a client's inflight message in the publisher's
		// goroutine before it sends the PUBACK.
		err := server.AddHook(new(bolt.Hook), &bolt.Options{
			Path:    *store,
			Options: &bbolt.Options{Timeout: 500 * time.Millisecond},
		})
		if err != nil {
			log.Fatal(err)
		}
	}
	if err := server.AddListener(listeners.NewTCP(listeners.Config{ID: "bench", Address: *address})); err != nil {
		log.Fatal(err)
	}
	if err := server.Serve(); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("LISTENING %s\n", *address)

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	<-signals
	// The benchmark stops the broker between runs with nothing left to deliver: exit at once.
	os.Exit(0)
}
