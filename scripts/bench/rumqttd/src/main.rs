//! Starts rumqttd 0.20.0 with the configuration file given as the only argument, as the crate's own
//! `rumqttd --config FILE` does (without its banner and log subscriber).
use rumqttd::{Broker, Config};

fn main() {
    let path = std::env::args().nth(1).expect("usage: rumqttd-bench <config.toml>");
    let config: Config = config::Config::builder()
        .add_source(config::File::with_name(&path))
        .build()
        .and_then(|c| c.try_deserialize())
        .unwrap_or_else(|error| panic!("bad rumqttd config {path}: {error}"));
    Broker::new(config).start().expect("rumqttd stopped");
}
