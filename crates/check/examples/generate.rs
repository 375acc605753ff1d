//! Prints a synthetic history (concur JSON Lines) from a simulated linearizable store, to feed
//! `concur check lin`: `cargo run -p check --example generate -- OPERATIONS KEYS CLIENTS
//! INDETERMINATE_PER_MILLE SEED [corrupt]`.

use check::synthetic::{self, SyntheticConfig};

fn main() {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let number = |index: usize, default: u64| {
        arguments
            .get(index)
            .and_then(|text| text.parse().ok())
            .unwrap_or(default)
    };
    let config = SyntheticConfig {
        operations: number(0, 1_000) as usize,
        keys: number(1, 10) as usize,
        clients: number(2, 5) as usize,
        indeterminate_per_mille: number(3, 10) as u32,
        seed: number(4, 0),
        corrupt_read: arguments.get(5).is_some_and(|flag| flag == "corrupt"),
        ..SyntheticConfig::default()
    };
    print!("{}", synthetic::generate(&config));
}
