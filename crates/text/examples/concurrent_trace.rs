//! Writes a generated concurrent-variant trace to stdout:
//! `cargo run --release -p text --example concurrent_trace SEED AGENTS TXNS > trace.json`.

#[path = "../tests/common/mod.rs"]
mod common;

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<u64>().expect("numbers"));
    let seed = args.next().unwrap_or(1);
    let agents = args.next().unwrap_or(3) as usize;
    let txns = args.next().unwrap_or(1000) as usize;
    let (json, _) = common::concurrent_trace(seed, agents, txns);
    println!("{json}");
}
