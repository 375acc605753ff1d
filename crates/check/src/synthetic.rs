//! Synthetic histories from a simulated linearizable key-value store, for tests and benchmarks.
//!
//! Each operation takes effect at one instant strictly between its invocation and its completion,
//! in a single global order, so the history is linearizable by construction (unless
//! [`SyntheticConfig::corrupt_read`] asks for one impossible read). Clients overlap at random.

use std::fmt::Write as _;

/// What to generate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntheticConfig {
    /// Number of operations.
    pub operations: usize,
    /// Number of keys (`k0`, `k1`, …).
    pub keys: usize,
    /// Number of client processes; each has at most one operation outstanding.
    pub clients: usize,
    /// Out of 1000 operations, how many end indeterminate (`info`); half of those take effect.
    pub indeterminate_per_mille: u32,
    /// Writes and compare-and-sets use values in `0..values`.
    pub values: i64,
    /// Seeds every random choice: same seed, same history.
    pub seed: u64,
    /// Make the read invoked nearest the middle return -1, a value never written.
    pub corrupt_read: bool,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        SyntheticConfig {
            operations: 1_000,
            keys: 10,
            clients: 5,
            indeterminate_per_mille: 10,
            values: 5,
            seed: 0,
            corrupt_read: false,
        }
    }
}

/// SplitMix64: small, fast, deterministic.
struct Random {
    state: u64,
}

impl Random {
    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut mixed = self.state;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        mixed ^ (mixed >> 31)
    }

    /// A number in `0..bound` (`bound` > 0).
    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Function {
    Read,
    Write,
    Cas,
}

struct Planned {
    process: usize,
    key: usize,
    function: Function,
    value: i64,
    expected: i64,
    invoke_ns: u64,
    effect_ns: u64,
    complete_ns: u64,
    indeterminate: bool,
    /// For a read: what it returned; for a cas: whether it applied.
    read: Option<i64>,
    applied: bool,
}

/// Generates a history in the concur JSON Lines format.
pub fn generate(config: &SyntheticConfig) -> String {
    let mut random = Random {
        state: config.seed ^ 0x5eed,
    };
    let keys = config.keys.max(1);
    let clients = config.clients.max(1);
    let values = config.values.max(1) as u64;
    let mut free_at_ns = vec![0u64; clients];
    let mut planned: Vec<Planned> = Vec::with_capacity(config.operations);
    for _ in 0..config.operations {
        // The client that becomes free first issues the next operation.
        let process = (0..clients)
            .min_by_key(|&client| free_at_ns[client])
            .unwrap_or(0);
        let invoke_ns = free_at_ns[process] + random.below(20_000);
        let effect_ns = invoke_ns + 1 + random.below(200_000);
        let complete_ns = effect_ns + 1 + random.below(200_000);
        free_at_ns[process] = complete_ns;
        let function = match random.below(10) {
            0..5 => Function::Read,
            5..8 => Function::Write,
            _ => Function::Cas,
        };
        planned.push(Planned {
            process,
            key: random.below(keys as u64) as usize,
            function,
            value: random.below(values) as i64,
            expected: random.below(values) as i64,
            invoke_ns,
            effect_ns,
            complete_ns,
            indeterminate: random.below(1000) < u64::from(config.indeterminate_per_mille),
            read: None,
            applied: false,
        });
    }
    apply_in_effect_order(&mut planned, keys, &mut random);
    if config.corrupt_read {
        corrupt_middle_read(&mut planned);
    }
    render(&planned)
}

/// Runs the operations against one sequential store in the order they take effect.
fn apply_in_effect_order(planned: &mut [Planned], keys: usize, random: &mut Random) {
    let mut order: Vec<usize> = (0..planned.len()).collect();
    order.sort_by_key(|&index| (planned[index].effect_ns, index));
    let mut store: Vec<Option<i64>> = vec![None; keys];
    for index in order {
        let operation = &mut planned[index];
        // Half the indeterminate operations never take effect.
        if operation.indeterminate && random.below(2) == 0 {
            continue;
        }
        let current = &mut store[operation.key];
        match operation.function {
            Function::Read => operation.read = *current,
            Function::Write => *current = Some(operation.value),
            Function::Cas => {
                // Half the compare-and-sets expect the current value, so that many succeed.
                if let Some(value) = current.filter(|_| random.below(2) == 0) {
                    operation.expected = value;
                }
                operation.applied = *current == Some(operation.expected);
                if operation.applied {
                    *current = Some(operation.value);
                }
            }
        }
    }
}

fn corrupt_middle_read(planned: &mut [Planned]) {
    let middle = planned.len() / 2;
    let candidate = (0..planned.len())
        .filter(|&index| planned[index].function == Function::Read && !planned[index].indeterminate)
        .min_by_key(|&index| index.abs_diff(middle));
    if let Some(index) = candidate {
        planned[index].read = Some(-1);
    }
}

fn render(planned: &[Planned]) -> String {
    // (time, completions before invocations at the same instant, operation).
    let mut events: Vec<(u64, u8, usize)> = Vec::with_capacity(2 * planned.len());
    for (index, operation) in planned.iter().enumerate() {
        events.push((operation.invoke_ns, 1, index));
        events.push((operation.complete_ns, 0, index));
    }
    events.sort_unstable();
    let mut text = String::with_capacity(planned.len() * 160);
    for (time_ns, kind, index) in events {
        let operation = &planned[index];
        let function = match operation.function {
            Function::Read => "read",
            Function::Write => "write",
            Function::Cas => "cas",
        };
        let (kind, error) = match (kind, operation.indeterminate, operation.function) {
            (1, _, _) => ("invoke", ""),
            (_, true, _) => ("info", ",\"error\":\"timeout\""),
            (_, false, Function::Cas) if !operation.applied => {
                ("fail", ",\"error\":\"precondition failed\"")
            }
            _ => ("ok", ""),
        };
        let value = match (operation.function, kind) {
            (Function::Read, "ok") => operation
                .read
                .map_or("null".to_string(), |value| value.to_string()),
            (Function::Read, _) => "null".to_string(),
            (Function::Write, _) => operation.value.to_string(),
            (Function::Cas, _) => format!("[{},{}]", operation.expected, operation.value),
        };
        // Writing into a String cannot fail.
        let _ = writeln!(
            text,
            "{{\"process\":{},\"type\":\"{kind}\",\"f\":\"{function}\",\"key\":\"k{}\",\
             \"value\":{value},\"time\":{time_ns}{error}}}",
            operation.process, operation.key
        );
    }
    text
}
