//! `deploy/rabbitmq/definitions.json` lists exactly the topology the code
//! declares for the prefix `kyc` (`Topology::declarations`): the same
//! exchanges and types, the same queues with the same arguments, the same
//! bindings. A difference in a queue's arguments would make every process fail
//! its declaration with `PRECONDITION_FAILED` against a broker loaded from the
//! file. No broker is needed.

use kyc_bus::Topology;
use kyc_bus::lapin::ExchangeKind;
use kyc_bus::lapin::types::{AMQPValue, FieldTable};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

fn definitions() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/rabbitmq/definitions.json"
    );
    let text = std::fs::read_to_string(path).expect("deploy/rabbitmq/definitions.json");
    serde_json::from_str(&text).expect("definitions.json is JSON")
}

/// The `kyc.…` entries of one section of the definitions, by name.
fn section<'a>(defs: &'a Value, name: &str, key: &str) -> BTreeMap<String, &'a Value> {
    defs[name]
        .as_array()
        .unwrap_or_else(|| panic!("definitions.json has a `{name}` array"))
        .iter()
        .filter(|e| e[key].as_str().is_some_and(|n| n.starts_with("kyc.")))
        .map(|e| (e[key].as_str().unwrap_or_default().to_owned(), e))
        .collect()
}

fn kind(kind: &ExchangeKind) -> String {
    match kind {
        ExchangeKind::Direct => "direct".to_owned(),
        ExchangeKind::Fanout => "fanout".to_owned(),
        ExchangeKind::Headers => "headers".to_owned(),
        ExchangeKind::Topic => "topic".to_owned(),
        ExchangeKind::Custom(name) => name.clone(),
    }
}

/// An AMQP argument value as the definitions file writes it.
fn value(v: &AMQPValue) -> Value {
    match v {
        AMQPValue::Boolean(b) => json!(b),
        AMQPValue::ShortShortInt(n) => json!(n),
        AMQPValue::ShortShortUInt(n) => json!(n),
        AMQPValue::ShortInt(n) => json!(n),
        AMQPValue::ShortUInt(n) => json!(n),
        AMQPValue::LongInt(n) => json!(n),
        AMQPValue::LongUInt(n) => json!(n),
        AMQPValue::LongLongInt(n) => json!(n),
        AMQPValue::LongString(s) => json!(s.to_string()),
        AMQPValue::ShortString(s) => json!(s.as_str()),
        other => panic!("an argument type the definitions cannot hold: {other:?}"),
    }
}

fn arguments(table: &FieldTable) -> BTreeMap<String, Value> {
    table
        .inner()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), value(v)))
        .collect()
}

fn json_arguments(entry: &Value) -> BTreeMap<String, Value> {
    entry["arguments"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

#[test]
fn definitions_declare_what_the_code_declares() {
    let defs = definitions();
    let declared = Topology::new("kyc").declarations();

    // Exchanges: the same names, types, all durable.
    let exchanges = section(&defs, "exchanges", "name");
    let names: BTreeSet<&String> = declared.exchanges.iter().map(|e| &e.name).collect();
    assert_eq!(
        exchanges.keys().collect::<BTreeSet<_>>(),
        names,
        "exchange names"
    );
    for e in &declared.exchanges {
        let entry = exchanges[&e.name];
        assert_eq!(entry["type"], json!(kind(&e.kind)), "{}: type", e.name);
        assert_eq!(entry["durable"], json!(true), "{}: durable", e.name);
        assert_eq!(
            entry["auto_delete"],
            json!(false),
            "{}: auto_delete",
            e.name
        );
        assert_eq!(entry["internal"], json!(false), "{}: internal", e.name);
        assert_eq!(entry["vhost"], json!("/"), "{}: vhost", e.name);
        assert!(json_arguments(entry).is_empty(), "{}: arguments", e.name);
    }

    // Queues: the same names, all durable, exactly the same arguments.
    let queues = section(&defs, "queues", "name");
    let names: BTreeSet<&String> = declared.queues.iter().map(|q| &q.name).collect();
    assert_eq!(queues.keys().collect::<BTreeSet<_>>(), names, "queue names");
    for q in &declared.queues {
        let entry = queues[&q.name];
        assert_eq!(entry["durable"], json!(true), "{}: durable", q.name);
        assert_eq!(
            entry["auto_delete"],
            json!(false),
            "{}: auto_delete",
            q.name
        );
        assert_eq!(entry["vhost"], json!("/"), "{}: vhost", q.name);
        assert_eq!(
            json_arguments(entry),
            arguments(&q.arguments),
            "{}: arguments (definitions.json left, code right)",
            q.name
        );
    }

    // Bindings: the same set of (exchange, queue, routing key), to queues.
    let bindings: BTreeSet<(String, String, String)> = defs["bindings"]
        .as_array()
        .expect("definitions.json has a `bindings` array")
        .iter()
        .filter(|b| b["source"].as_str().is_some_and(|s| s.starts_with("kyc.")))
        .map(|b| {
            assert_eq!(b["destination_type"], json!("queue"), "{b}");
            assert!(json_arguments(b).is_empty(), "binding arguments: {b}");
            let text = |k: &str| b[k].as_str().unwrap_or_default().to_owned();
            (text("source"), text("destination"), text("routing_key"))
        })
        .collect();
    let expected: BTreeSet<(String, String, String)> = declared
        .bindings
        .iter()
        .map(|b| (b.exchange.clone(), b.queue.clone(), b.routing_key.clone()))
        .collect();
    assert_eq!(bindings, expected, "bindings");
}

#[test]
fn the_declarations_follow_the_prefix() {
    let declared = Topology::new("t42").declarations();
    let names = declared
        .exchanges
        .iter()
        .map(|e| &e.name)
        .chain(declared.queues.iter().map(|q| &q.name))
        .chain(
            declared
                .bindings
                .iter()
                .flat_map(|b| [&b.exchange, &b.queue]),
        );
    for name in names {
        assert!(name.starts_with("t42."), "{name}");
    }
    // The submissions queue dead-letters into this prefix's dead exchange.
    let submissions = &declared.queues[0];
    assert_eq!(
        arguments(&submissions.arguments)["x-dead-letter-exchange"],
        json!("t42.dead")
    );
}
