//! Aggregates: rebuild from history or snapshot + tail, snapshots every N events, upcasting of a
//! v1 event to v2 on read, rejected commands writing nothing.

use events::{
    AggregateError, AsOf, EventData, EventStore, ExpectedVersion, Metadata, ReadOptions,
    Repository, StreamRevision, Upcasters, Uuid,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", content = "data")]
enum AccountEvent {
    /// v1 stored `{"amount": whole_units}`; v2 stores cents and a currency.
    Deposited {
        amount_cents: u64,
        currency: String,
    },
    Withdrawn {
        amount_cents: u64,
    },
    Frozen,
}

enum AccountCommand {
    Deposit(u64),
    Withdraw(u64),
    Freeze,
}

#[derive(Debug, thiserror::Error)]
enum AccountError {
    #[error("insufficient funds: balance {balance_cents}, asked {asked_cents}")]
    InsufficientFunds {
        balance_cents: u64,
        asked_cents: u64,
    },
    #[error("account is frozen")]
    Frozen,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Account {
    balance_cents: u64,
    frozen: bool,
    operations: u64,
}

impl events::Aggregate for Account {
    type Event = AccountEvent;
    type Command = AccountCommand;
    type Error = AccountError;
    const CATEGORY: &'static str = "account";

    fn apply(&mut self, event: &AccountEvent) {
        self.operations += 1;
        match event {
            AccountEvent::Deposited { amount_cents, .. } => self.balance_cents += amount_cents,
            AccountEvent::Withdrawn { amount_cents } => self.balance_cents -= amount_cents,
            AccountEvent::Frozen => self.frozen = true,
        }
    }

    fn decide(&self, command: &AccountCommand) -> Result<Vec<AccountEvent>, AccountError> {
        if self.frozen {
            return Err(AccountError::Frozen);
        }
        match *command {
            AccountCommand::Deposit(amount_cents) => Ok(vec![AccountEvent::Deposited {
                amount_cents,
                currency: "EUR".into(),
            }]),
            AccountCommand::Withdraw(asked_cents) if asked_cents > self.balance_cents => {
                Err(AccountError::InsufficientFunds {
                    balance_cents: self.balance_cents,
                    asked_cents,
                })
            }
            AccountCommand::Withdraw(amount_cents) => {
                Ok(vec![AccountEvent::Withdrawn { amount_cents }])
            }
            AccountCommand::Freeze => Ok(vec![AccountEvent::Frozen]),
        }
    }
}

fn deposited_v1_to_v2(data: Value) -> Value {
    let units = data["amount"].as_u64().unwrap_or(0);
    json!({ "amount_cents": units * 100, "currency": "EUR" })
}

fn upcasters() -> Upcasters {
    Upcasters::new().register("Deposited", 1, deposited_v1_to_v2)
}

#[test]
fn v1_events_are_upcast_to_v2_on_read_and_new_events_are_written_as_v2() {
    let store = EventStore::in_memory();
    // An event written by an older version of the application.
    let old = EventData::json("Deposited", &json!({ "amount": 7 })).expect("json");
    assert_eq!(old.schema_version, 1);
    store
        .append("account-ada", ExpectedVersion::NoStream, vec![old])
        .expect("append v1");

    let repository = Repository::<Account>::new(&store).with_upcasters(upcasters());
    let loaded = repository.load("ada").expect("load");
    assert_eq!(
        loaded.state.balance_cents, 700,
        "v1 whole units read as cents"
    );

    repository
        .execute("ada", &AccountCommand::Deposit(50), Metadata::default())
        .expect("deposit");
    let stored = store
        .read_stream("account-ada", ReadOptions::forwards())
        .expect("read");
    assert_eq!(stored[1].event.schema_version, 2);
    assert_eq!(
        stored[1].data_as::<Value>().expect("json"),
        json!({ "amount_cents": 50, "currency": "EUR" })
    );
    assert_eq!(
        repository.load("ada").expect("load").state.balance_cents,
        750
    );

    // Without the upcaster the v1 event does not decode: the error says where and why.
    let plain = Repository::<Account>::new(&store);
    match plain.load("ada") {
        Err(AggregateError::Decode {
            position: 0,
            event_type,
            ..
        }) => assert_eq!(event_type, "Deposited"),
        other => panic!("expected a decode error, got {other:?}"),
    }
}

#[test]
fn snapshot_plus_tail_equals_full_history() {
    let store = EventStore::in_memory();
    let repository = Repository::<Account>::new(&store).snapshot_every(10);
    let correlation = Uuid::new_v4();
    for index in 0..25 {
        let command = if index % 5 == 4 {
            AccountCommand::Withdraw(30)
        } else {
            AccountCommand::Deposit(10 + index)
        };
        let metadata = Metadata::caused_by(correlation, Uuid::from_u128(index as u128 + 1));
        repository
            .execute("bob", &command, metadata)
            .expect("execute");
    }
    let from_snapshot = repository.load("bob").expect("load");
    let from_history = repository.load_from_history("bob").expect("history");
    assert!(from_snapshot.from_snapshot);
    assert_eq!(
        from_snapshot.events_replayed, 5,
        "snapshot at revision 19, tail of 5"
    );
    assert!(!from_history.from_snapshot);
    assert_eq!(from_history.events_replayed, 25);
    assert_eq!(from_snapshot.state, from_history.state);
    assert_eq!(from_snapshot.revision, StreamRevision::Revision(24));
    // Only the latest snapshot is kept.
    let snapshots = store
        .read_stream("$snapshot-account-bob", ReadOptions::forwards())
        .expect("read");
    assert_eq!(snapshots.len(), 1);
    let events = store
        .read_stream("account-bob", ReadOptions::forwards())
        .expect("read");
    assert!(
        events
            .iter()
            .all(|event| event.event.metadata.correlation_id == Some(correlation))
    );
}

#[test]
fn rejected_commands_write_nothing_and_history_can_be_replayed_as_of_a_revision() {
    let store = EventStore::in_memory();
    let repository = Repository::<Account>::new(&store);
    repository
        .execute("cy", &AccountCommand::Deposit(100), Metadata::default())
        .expect("deposit");
    repository
        .execute("cy", &AccountCommand::Withdraw(40), Metadata::default())
        .expect("withdraw");
    match repository.execute("cy", &AccountCommand::Withdraw(500), Metadata::default()) {
        Err(AggregateError::Rejected(AccountError::InsufficientFunds {
            balance_cents: 60,
            asked_cents: 500,
        })) => {}
        other => panic!("expected rejection, got {other:?}"),
    }
    repository
        .execute("cy", &AccountCommand::Freeze, Metadata::default())
        .expect("freeze");
    assert!(matches!(
        repository.execute("cy", &AccountCommand::Deposit(1), Metadata::default()),
        Err(AggregateError::Rejected(AccountError::Frozen))
    ));
    assert_eq!(
        store.stream_revision("account-cy"),
        StreamRevision::Revision(2)
    );
    let then = repository
        .load_as_of("cy", Some(AsOf::Revision(0)))
        .expect("as of");
    assert_eq!((then.state.balance_cents, then.state.frozen), (100, false));
}

#[test]
fn concurrent_commands_on_one_aggregate_all_apply_once() {
    let store = EventStore::in_memory();
    let repository = Repository::<Account>::new(&store).snapshot_every(7);
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let repository = repository.clone();
            std::thread::spawn(move || {
                for _ in 0..20 {
                    // Conflicts are retried inside execute; under heavy contention it may give up.
                    loop {
                        match repository.execute(
                            "dee",
                            &AccountCommand::Deposit(1),
                            Metadata::default(),
                        ) {
                            Ok(_) => break,
                            Err(AggregateError::TooMuchContention { .. }) => continue,
                            Err(other) => panic!("{other}"),
                        }
                    }
                }
            })
        })
        .collect();
    threads
        .into_iter()
        .for_each(|thread| thread.join().expect("thread"));
    let loaded = repository.load("dee").expect("load");
    assert_eq!(loaded.state.balance_cents, 40);
    assert_eq!(loaded.revision, StreamRevision::Revision(39));
}
