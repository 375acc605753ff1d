//! The seed's shopping list: an OR-Set of items, resettable PN-counter quantities in an OR-Map, and
//! last-writer-wins notes, edited by Alice and Bob on two replicas with no coordination.
//!
//! Run: `cargo run -p crdt --example shopping_list`.

use clock::HybridClock;
use crdt::{CausalCounter, Codec, CounterStore, Crdt, Delta, LwwMap, OrMap, OrSet, PnCounter};

/// One replica's shopping list: three CRDTs side by side.
#[derive(Clone, Debug, PartialEq)]
struct ShoppingList {
    replica: u64,
    clock: HybridClock,
    items: OrSet<String>,
    quantities: OrMap<String, CounterStore>,
    notes: LwwMap<String, String>,
}

/// What one edit produced, to ship to the other replica (here: as encoded bytes).
struct Edit {
    items: Vec<u8>,
    quantities: Vec<u8>,
    notes: Option<Vec<u8>>,
}

impl ShoppingList {
    fn new(replica: u64) -> Self {
        Self {
            replica,
            clock: HybridClock::new(500_000_000),
            items: OrSet::new(),
            quantities: OrMap::new(),
            notes: LwwMap::new(),
        }
    }

    /// Adds `count` of `item` (adding to what is there), with an optional note.
    fn add(&mut self, item: &str, count: i64, note: Option<&str>, physical_ns: u64) -> Edit {
        let replica = self.replica;
        let items = self.items.add(replica, item.to_string()).to_bytes();
        let quantities = self
            .quantities
            .update(item.to_string(), |quantity: &mut CausalCounter| {
                quantity.add(replica, count)
            })
            .to_bytes();
        let notes = note.map(|note| {
            let timestamp = self.clock.now(physical_ns);
            self.notes
                .insert(item.to_string(), note.to_string(), timestamp, replica)
                .to_bytes()
        });
        Edit {
            items,
            quantities,
            notes,
        }
    }

    /// Removes `item`: the set entry, its quantity (reset) and its note (a timestamped tombstone).
    fn remove(&mut self, item: &str, physical_ns: u64) -> Edit {
        let items = self.items.remove(&item.to_string()).to_bytes();
        let quantities = self.quantities.remove(&item.to_string()).to_bytes();
        let timestamp = self.clock.now(physical_ns);
        let notes = Some(
            self.notes
                .remove(item.to_string(), timestamp, self.replica)
                .to_bytes(),
        );
        Edit {
            items,
            quantities,
            notes,
        }
    }

    /// Receives an edit from the other replica.
    fn receive(&mut self, edit: &Edit) {
        self.items
            .apply(&Delta::from_bytes(&edit.items).expect("items delta decodes"));
        self.quantities
            .apply(&Delta::from_bytes(&edit.quantities).expect("quantities delta decodes"));
        if let Some(notes) = &edit.notes {
            self.notes
                .apply(&Delta::from_bytes(notes).expect("notes delta decodes"));
        }
    }

    /// Full-state merge (what anti-entropy would do).
    fn merge(&mut self, other: &ShoppingList) {
        self.items.merge(&other.items);
        self.quantities.merge(&other.quantities);
        self.notes.merge(&other.notes);
    }

    fn show(&self, who: &str) -> String {
        let lines: Vec<String> = self
            .items
            .iter()
            .map(|item| {
                let quantity = self.quantities.value_at(item).unwrap_or(0);
                let note = self
                    .notes
                    .get(item)
                    .map_or(String::new(), |note| format!(" \"{note}\""));
                format!("{item} ×{quantity}{note}")
            })
            .collect();
        format!("{who}: [{}]", lines.join(", "))
    }

    fn quantity(&self, item: &str) -> i64 {
        self.quantities.value_at(&item.to_string()).unwrap_or(0)
    }
}

fn main() {
    let mut alice = ShoppingList::new(1);
    let mut bob = ShoppingList::new(2);

    println!("1. Concurrent adds, no coordination");
    // Alice and Bob both add milk, neither having seen the other's edit; Bob writes his note 5 ms
    // after Alice writes hers.
    let from_alice = alice.add("milk", 2, Some("organic"), 1_000_000_000);
    let from_bob = bob.add("milk", 1, Some("2% fat"), 1_005_000_000);
    println!("   {}", alice.show("alice"));
    println!("   {}", bob.show("bob  "));
    alice.receive(&from_bob);
    bob.receive(&from_alice);
    println!("   after exchanging deltas both ways:");
    println!("   {}", alice.show("alice"));
    println!("   {}", bob.show("bob  "));
    assert_eq!(alice.items, bob.items);
    assert_eq!(alice.quantities, bob.quantities);
    assert_eq!(alice.notes, bob.notes);
    assert_eq!(alice.quantity("milk"), 3, "quantities add up");
    assert_eq!(
        alice.notes.get(&"milk".to_string()).map(String::as_str),
        Some("2% fat"),
        "the later note wins"
    );

    println!();
    println!("2. Alice removes milk while Bob concurrently adds one more");
    // What happens: the item comes back (add-wins OR-Set). Its quantity is *Bob's running total*,
    // 1 + 1 = 2: Alice's remove reset every increment she had seen (her 2 and Bob's earlier 1), but
    // a causal counter keeps one dot per replica holding that replica's total, so Bob's concurrent
    // increment re-issues his total (his earlier 1 plus the new 1) under a dot Alice never saw.
    // Alice's own 2 is gone for good. Her note tombstone is later than the "2% fat" note, so the
    // note is gone too. (Counting each increment under its own dot would give exactly 1, at the
    // price of metadata that grows with every increment; concur keeps metadata bounded.)
    let plain_counter_before = {
        // For contrast: a plain PN-Counter (no reset) that saw the same 2 + 1.
        let mut counter = PnCounter::new();
        counter.add(1, 2);
        counter.add(2, 1);
        counter
    };
    let from_alice = alice.remove("milk", 2_000_000_000);
    let from_bob = bob.add("milk", 1, None, 2_001_000_000);
    alice.receive(&from_bob);
    bob.receive(&from_alice);
    println!("   {}", alice.show("alice"));
    println!("   {}", bob.show("bob  "));
    assert_eq!(alice.items, bob.items);
    assert_eq!(alice.quantities, bob.quantities);
    assert!(
        alice.items.contains(&"milk".to_string()),
        "add wins over a concurrent remove"
    );
    assert_eq!(
        alice.quantity("milk"),
        2,
        "Alice's 2 is reset; Bob's total 1 + 1 survives"
    );
    assert_eq!(
        alice.notes.get(&"milk".to_string()),
        None,
        "the later tombstone wins"
    );
    let mut plain = plain_counter_before;
    plain.add(2, 1);
    println!(
        "   (with a plain PN-Counter that a remove cannot reset, milk would come back as ×{})",
        plain.value()
    );
    assert_eq!(plain.value(), 4);

    println!();
    println!(
        "3. Anti-entropy by full-state merge changes nothing more: the replicas had converged"
    );
    let before = alice.clone();
    alice.merge(&bob);
    bob.merge(&before);
    assert_eq!(alice.items, bob.items);
    assert_eq!(alice.quantities, before.quantities);
    println!("   {}", alice.show("alice"));
    println!(
        "   encoded sizes: items {} B, quantities {} B, notes {} B",
        alice.items.to_bytes().len(),
        alice.quantities.to_bytes().len(),
        alice.notes.to_bytes().len()
    );
}
