//! CQRS over the event store: shopping carts.
//!
//! Command side: the `Cart` aggregate (CartCreated, ItemAdded, ItemRemoved, ItemQuantityChanged,
//! CartCheckedOut, CartAbandoned) with snapshots every 5 events and an upcaster for the old v1
//! `ItemAdded` that had no price. Query side: a cart summary and an abandoned-carts report, fed by
//! a live catch-up subscription running on its own thread while commands are handled.
//!
//! Run: `cargo run -p events --example shopping_cart`

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use events::{
    Aggregate, AggregateError, EventData, EventStore, ExpectedVersion, Metadata, Projection,
    ProjectionRunner, RecordedEvent, Repository, StoreError, SubscriptionFilter, Upcasters,
    decode_event,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
enum CartEvent {
    CartCreated {
        customer: String,
    },
    ItemAdded {
        sku: String,
        quantity: u32,
        unit_price_cents: u64,
    },
    ItemRemoved {
        sku: String,
    },
    ItemQuantityChanged {
        sku: String,
        quantity: u32,
    },
    CartCheckedOut {
        total_cents: u64,
    },
    CartAbandoned,
}

enum CartCommand {
    Create {
        customer: String,
    },
    AddItem {
        sku: String,
        quantity: u32,
        unit_price_cents: u64,
    },
    RemoveItem {
        sku: String,
    },
    ChangeQuantity {
        sku: String,
        quantity: u32,
    },
    CheckOut,
    Abandon,
}

#[derive(Debug, thiserror::Error)]
enum CartError {
    #[error("cart already exists")]
    AlreadyCreated,
    #[error("cart does not exist")]
    NotCreated,
    #[error("cart is closed")]
    Closed,
    #[error("item {0} is not in the cart")]
    NoSuchItem(String),
    #[error("an empty cart cannot be checked out")]
    Empty,
    #[error("quantity must be positive")]
    ZeroQuantity,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
enum Status {
    #[default]
    New,
    Open,
    CheckedOut,
    Abandoned,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Line {
    quantity: u32,
    unit_price_cents: u64,
}

#[derive(Default, Serialize, Deserialize)]
struct Cart {
    status: Status,
    lines: BTreeMap<String, Line>,
}

impl Cart {
    fn total_cents(&self) -> u64 {
        self.lines
            .values()
            .map(|line| u64::from(line.quantity) * line.unit_price_cents)
            .sum()
    }
}

impl Aggregate for Cart {
    type Event = CartEvent;
    type Command = CartCommand;
    type Error = CartError;
    const CATEGORY: &'static str = "cart";

    fn apply(&mut self, event: &CartEvent) {
        match event {
            CartEvent::CartCreated { .. } => self.status = Status::Open,
            CartEvent::ItemAdded {
                sku,
                quantity,
                unit_price_cents,
            } => {
                let line = self.lines.entry(sku.clone()).or_default();
                line.quantity += quantity;
                line.unit_price_cents = *unit_price_cents;
            }
            CartEvent::ItemRemoved { sku } => {
                self.lines.remove(sku);
            }
            CartEvent::ItemQuantityChanged { sku, quantity } => {
                if let Some(line) = self.lines.get_mut(sku) {
                    line.quantity = *quantity;
                }
            }
            CartEvent::CartCheckedOut { .. } => self.status = Status::CheckedOut,
            CartEvent::CartAbandoned => self.status = Status::Abandoned,
        }
    }

    fn decide(&self, command: &CartCommand) -> Result<Vec<CartEvent>, CartError> {
        match (self.status, command) {
            (Status::New, CartCommand::Create { customer }) => {
                return Ok(vec![CartEvent::CartCreated {
                    customer: customer.clone(),
                }]);
            }
            (_, CartCommand::Create { .. }) => return Err(CartError::AlreadyCreated),
            (Status::New, _) => return Err(CartError::NotCreated),
            (Status::CheckedOut | Status::Abandoned, _) => return Err(CartError::Closed),
            (Status::Open, _) => {}
        }
        let has = |sku: &String| {
            if self.lines.contains_key(sku) {
                Ok(())
            } else {
                Err(CartError::NoSuchItem(sku.clone()))
            }
        };
        Ok(match command {
            CartCommand::Create { .. } => unreachable!("handled above"),
            CartCommand::AddItem { quantity: 0, .. }
            | CartCommand::ChangeQuantity { quantity: 0, .. } => {
                return Err(CartError::ZeroQuantity);
            }
            CartCommand::AddItem {
                sku,
                quantity,
                unit_price_cents,
            } => {
                vec![CartEvent::ItemAdded {
                    sku: sku.clone(),
                    quantity: *quantity,
                    unit_price_cents: *unit_price_cents,
                }]
            }
            CartCommand::RemoveItem { sku } => {
                has(sku)?;
                vec![CartEvent::ItemRemoved { sku: sku.clone() }]
            }
            CartCommand::ChangeQuantity { sku, quantity } => {
                has(sku)?;
                vec![CartEvent::ItemQuantityChanged {
                    sku: sku.clone(),
                    quantity: *quantity,
                }]
            }
            CartCommand::CheckOut if self.lines.is_empty() => return Err(CartError::Empty),
            CartCommand::CheckOut => vec![CartEvent::CartCheckedOut {
                total_cents: self.total_cents(),
            }],
            CartCommand::Abandon => vec![CartEvent::CartAbandoned],
        })
    }
}

/// v1 `ItemAdded` had no price: the catalogue price of the time was 100 cents for everything.
fn item_added_v1_to_v2(mut data: Value) -> Value {
    data["unit_price_cents"] = json!(100);
    data
}

fn upcasters() -> Upcasters {
    Upcasters::new().register("ItemAdded", 1, item_added_v1_to_v2)
}

/// Query model 1: one line per cart.
#[derive(Default, Serialize, Deserialize)]
struct CartSummaries {
    carts: BTreeMap<String, Summary>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Summary {
    customer: String,
    items: u32,
    total_cents: u64,
    status: String,
    lines: BTreeMap<String, (u32, u64)>,
}

impl Projection for CartSummaries {
    fn filter(&self) -> SubscriptionFilter {
        SubscriptionFilter::StreamPrefix("cart-".into())
    }

    fn apply(&mut self, recorded: &RecordedEvent) {
        let Ok(event) = decode_event::<CartEvent>(recorded, &upcasters()) else {
            return;
        };
        let summary = self.carts.entry(recorded.stream.clone()).or_default();
        match event {
            CartEvent::CartCreated { customer } => {
                (summary.customer, summary.status) = (customer, "open".into())
            }
            CartEvent::ItemAdded {
                sku,
                quantity,
                unit_price_cents,
            } => {
                let line = summary.lines.entry(sku).or_default();
                *line = (line.0 + quantity, unit_price_cents);
            }
            CartEvent::ItemRemoved { sku } => {
                summary.lines.remove(&sku);
            }
            CartEvent::ItemQuantityChanged { sku, quantity } => {
                if let Some(line) = summary.lines.get_mut(&sku) {
                    line.0 = quantity;
                }
            }
            CartEvent::CartCheckedOut { .. } => summary.status = "checked out".into(),
            CartEvent::CartAbandoned => summary.status = "abandoned".into(),
        }
        summary.items = summary.lines.values().map(|line| line.0).sum();
        summary.total_cents = summary
            .lines
            .values()
            .map(|line| u64::from(line.0) * line.1)
            .sum();
    }
}

/// Query model 2: abandoned carts and the revenue they left behind, plus carts idle long enough
/// to be abandoned (what a sweeper acts on).
#[derive(Default, Serialize, Deserialize)]
struct AbandonedCarts {
    open_last_activity_ns: BTreeMap<String, u64>,
    open_value_cents: BTreeMap<String, u64>,
    abandoned: BTreeMap<String, u64>,
}

impl AbandonedCarts {
    fn idle_since(&self, cutoff_ns: u64) -> Vec<String> {
        self.open_last_activity_ns
            .iter()
            .filter(|&(_, &at)| at < cutoff_ns)
            .map(|(cart, _)| cart.clone())
            .collect()
    }
}

impl Projection for AbandonedCarts {
    fn filter(&self) -> SubscriptionFilter {
        SubscriptionFilter::StreamPrefix("cart-".into())
    }

    fn apply(&mut self, recorded: &RecordedEvent) {
        let Ok(event) = decode_event::<CartEvent>(recorded, &upcasters()) else {
            return;
        };
        let cart = recorded.stream.clone();
        match event {
            CartEvent::CartCheckedOut { .. } => {
                self.open_last_activity_ns.remove(&cart);
                self.open_value_cents.remove(&cart);
            }
            CartEvent::CartAbandoned => {
                self.open_last_activity_ns.remove(&cart);
                let value = self.open_value_cents.remove(&cart).unwrap_or(0);
                self.abandoned.insert(cart, value);
            }
            event => {
                self.open_last_activity_ns
                    .insert(cart.clone(), recorded.recorded_at.wall_ns);
                let value = self.open_value_cents.entry(cart).or_default();
                match event {
                    CartEvent::ItemAdded {
                        quantity,
                        unit_price_cents,
                        ..
                    } => {
                        *value += u64::from(quantity) * unit_price_cents;
                    }
                    // Exact values after removals live in the summary; this report keeps a running sum.
                    CartEvent::ItemRemoved { .. } | CartEvent::ItemQuantityChanged { .. } => {}
                    _ => {}
                }
            }
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let directory = std::env::temp_dir().join(format!(
        "concur-events-shopping-cart-{}",
        std::process::id()
    ));
    let store = EventStore::open(&directory)?;
    let carts = Repository::<Cart>::new(&store)
        .with_upcasters(upcasters())
        .snapshot_every(5);
    let run = |cart: &str, command: CartCommand| -> Result<(), AggregateError<CartError>> {
        carts
            .execute(cart, &command, Metadata::default())
            .map(|_| ())
    };
    let add = |sku: &str, quantity, unit_price_cents| CartCommand::AddItem {
        sku: sku.into(),
        quantity,
        unit_price_cents,
    };

    // The query side follows live on its own thread, as a read-model service would.
    let done = Arc::new(AtomicBool::new(false));
    let follower = {
        let (store, done) = (store.clone(), done.clone());
        std::thread::spawn(move || -> Result<CartSummaries, StoreError> {
            let mut summaries = ProjectionRunner::<CartSummaries>::start(&store, "cart-summaries")?;
            while !done.load(Ordering::Acquire) {
                summaries.follow_for(Duration::from_millis(50))?;
            }
            // Everything appended before `done` was set is visible now.
            summaries.catch_up()?;
            Ok(summaries.into_state())
        })
    };

    // A cart written by an older release: its ItemAdded is schema v1, without a price.
    let legacy = EventData::json("ItemAdded", &json!({ "sku": "mug", "quantity": 2 }))?;
    let created = EventData::json("CartCreated", &json!({ "customer": "grace" }))?;
    store.append(
        "cart-legacy",
        ExpectedVersion::NoStream,
        vec![created, legacy],
    )?;

    run(
        "1",
        CartCommand::Create {
            customer: "ada".into(),
        },
    )?;
    run("1", add("tea", 2, 450))?;
    run("1", add("scone", 4, 250))?;
    run(
        "1",
        CartCommand::ChangeQuantity {
            sku: "scone".into(),
            quantity: 3,
        },
    )?;
    run("1", add("jam", 1, 600))?;
    run("1", CartCommand::RemoveItem { sku: "jam".into() })?;
    run("1", CartCommand::CheckOut)?;
    let closed = run("1", add("cake", 1, 900));
    println!(
        "add to a checked-out cart: {}",
        closed.map_or_else(|error| error.to_string(), |()| "accepted?!".into())
    );

    run(
        "2",
        CartCommand::Create {
            customer: "alan".into(),
        },
    )?;
    run("2", add("coffee", 1, 1200))?;
    std::thread::sleep(Duration::from_millis(20));
    let cutoff_ns = store.read_all(events::ReadOptions::backwards().max_count(1))?[0]
        .recorded_at
        .wall_ns
        + 1;
    run(
        "3",
        CartCommand::Create {
            customer: "edsger".into(),
        },
    )?;
    run("3", add("biscuit", 6, 80))?;

    // A sweeper abandons carts idle since the cutoff, reading the abandoned-carts projection.
    let mut abandoned = ProjectionRunner::<AbandonedCarts>::start(&store, "abandoned-carts")?;
    abandoned.catch_up()?;
    for stream in abandoned.state().idle_since(cutoff_ns) {
        let id = stream.trim_start_matches("cart-");
        println!("sweeper: {stream} idle, abandoning");
        run(id, CartCommand::Abandon)?;
    }
    abandoned.catch_up()?;

    done.store(true, Ordering::Release);
    let summaries = follower.join().map_err(|_| "follower panicked")??;
    println!("\ncart summaries (live projection):");
    for (cart, summary) in &summaries.carts {
        println!(
            "  {cart:<12} {:<7} {:>2} items {:>6.2} EUR  {}",
            summary.customer,
            summary.items,
            summary.total_cents as f64 / 100.0,
            summary.status
        );
    }
    println!("\nabandoned carts: {:?}", abandoned.state().abandoned);

    let one = &summaries.carts["cart-1"];
    assert_eq!(
        (one.items, one.total_cents, one.status.as_str()),
        (5, 2 * 450 + 3 * 250, "checked out")
    );
    assert_eq!(
        summaries.carts["cart-legacy"].total_cents, 200,
        "v1 ItemAdded upcast with the old price"
    );
    assert_eq!(
        abandoned.state().abandoned.keys().collect::<Vec<_>>(),
        ["cart-2", "cart-legacy"]
    );
    assert_eq!(abandoned.state().abandoned["cart-2"], 1200);
    assert!(
        abandoned
            .state()
            .open_last_activity_ns
            .contains_key("cart-3")
    );

    let loaded = carts.load("1")?;
    println!(
        "\ncart-1 loaded from snapshot: {} (+{} events after it), status {:?}",
        loaded.from_snapshot, loaded.events_replayed, loaded.state.status
    );
    assert!(loaded.from_snapshot);
    assert_eq!(
        loaded.state.total_cents(),
        carts.load_from_history("1")?.state.total_cents()
    );
    std::fs::remove_dir_all(&directory)?;
    Ok(())
}
