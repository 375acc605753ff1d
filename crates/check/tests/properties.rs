//! Goal: the checker is right on histories nobody wrote by hand. Method: (1) histories generated
//! from a sequential store with random overlapping intervals are always linearizable, and a read
//! mutated to an impossible value is always caught; (2) on tiny random histories the verdict equals
//! a brute-force search over every real-time-respecting order; (3) parsers never panic.

use check::history::{Format, History};
use check::linearizability;
use check::synthetic::{self, SyntheticConfig};
use proptest::prelude::*;

fn config() -> impl Strategy<Value = SyntheticConfig> {
    (
        1usize..400,
        1usize..6,
        1usize..8,
        0u32..200,
        1i64..6,
        any::<u64>(),
    )
        .prop_map(
            |(operations, keys, clients, indeterminate_per_mille, values, seed)| SyntheticConfig {
                operations,
                keys,
                clients,
                indeterminate_per_mille,
                values,
                seed,
                corrupt_read: false,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn histories_of_a_sequential_store_are_linearizable(config in config()) {
        let history = History::from_jsonl(&synthetic::generate(&config)).expect("parses");
        prop_assert_eq!(history.len(), config.operations);
        prop_assert!(linearizability::check(&history).is_linearizable());
    }

    #[test]
    fn a_read_of_a_value_never_written_is_caught(config in config()) {
        // Refuting a history means exhausting every order before the bad read, which grows
        // exponentially with the indeterminate operations pending at once: keep them few.
        let config = SyntheticConfig {
            corrupt_read: true,
            indeterminate_per_mille: config.indeterminate_per_mille % 40,
            ..config
        };
        let text = synthetic::generate(&config);
        let corrupted = text.contains(r#""type":"ok","f":"read","key":"#)
            && text.contains(r#""value":-1,"#);
        let verdict = linearizability::check(&History::from_jsonl(&text).expect("parses"));
        prop_assert_eq!(verdict.is_linearizable(), !corrupted);
        if let linearizability::Verdict::NotLinearizable(counterexample) = verdict {
            prop_assert_eq!(&counterexample.operation.outcome,
                &check::history::Outcome::Ok(check::history::Value::Int(-1)));
        }
    }

    #[test]
    fn parsers_never_panic(text in "[ -~\t\n]{0,300}") {
        for format in [Format::Auto, Format::Concur, Format::JepsenEtcd, Format::PorcupineKv] {
            if let Ok(history) = History::parse(&text, format) {
                let _ = linearizability::check(&history);
            }
        }
    }

    #[test]
    fn parsers_never_panic_on_near_valid_lines(lines in prop::collection::vec(near_valid_line(), 0..12)) {
        let text = lines.join("\n");
        if let Ok(history) = History::parse(&text, Format::Auto) {
            let _ = linearizability::check(&history);
        }
    }
}

proptest! {
    // Tiny histories are cheap: check many, so both verdicts come up often.
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn tiny_histories_agree_with_brute_force(operations in tiny_history()) {
        let text = render(&operations);
        let history = History::from_jsonl(&text).expect("parses");
        let expected = brute_force(&operations);
        prop_assert_eq!(linearizability::check(&history).is_linearizable(), expected, "{}", text);
    }
}

fn near_valid_line() -> impl Strategy<Value = String> {
    prop_oneof![
        (
            0u8..3,
            prop::sample::select(vec!["invoke", "ok", "fail", "info", "x"]),
            prop::sample::select(vec!["read", "write", "cas", "append", "get"]),
            prop::sample::select(vec!["null", "1", "\"a\"", "[1,2]", "[1]", "{}"])
        )
            .prop_map(|(process, kind, function, value)| format!(
                r#"{{"process":{process},"type":"{kind}","f":"{function}","value":{value}}}"#
            )),
        (
            0u8..3,
            prop::sample::select(vec![":invoke", ":ok", ":fail", ":info"]),
            prop::sample::select(vec![":read", ":write", ":cas"]),
            prop::sample::select(vec!["nil", "3", "[1 2]", "[1", ":timed-out"])
        )
            .prop_map(|(process, kind, function, value)| format!(
                "INFO  jepsen.util - {process}\t{kind}\t{function}\t{value}"
            )),
    ]
}

/// One operation of a tiny single-register history, each by its own process.
#[derive(Clone, Debug)]
struct Tiny {
    function: u8,
    first: i64,
    second: i64,
    /// 0 = ok, 1 = fail, 2 = info, 3 = never completed.
    ending: u8,
    call_key: u32,
    return_key: u32,
}

fn tiny_history() -> impl Strategy<Value = Vec<Tiny>> {
    prop::collection::vec(
        (
            0u8..3,
            -1i64..3,
            -1i64..3,
            prop::sample::select(vec![0u8, 0, 0, 1, 2, 3]),
            any::<u32>(),
            any::<u32>(),
        )
            .prop_map(
                |(function, first, second, ending, call_key, return_key)| Tiny {
                    function,
                    first,
                    second,
                    ending,
                    call_key,
                    return_key,
                },
            ),
        1..6,
    )
}

/// -1 stands for null.
fn json(value: i64) -> String {
    if value < 0 {
        "null".to_string()
    } else {
        value.to_string()
    }
}

/// Event order: each operation's call at the smaller of its two keys, its return at the larger.
fn events(operations: &[Tiny]) -> Vec<(u64, bool, usize)> {
    let mut events = Vec::new();
    for (index, operation) in operations.iter().enumerate() {
        let (call, ret) = if operation.call_key <= operation.return_key {
            (operation.call_key, operation.return_key)
        } else {
            (operation.return_key, operation.call_key)
        };
        events.push(((u64::from(call) << 8) | index as u64, false, index));
        if operation.ending != 3 {
            events.push(((u64::from(ret) << 8) | 0x80 | index as u64, true, index));
        }
    }
    events.sort();
    events
}

fn render(operations: &[Tiny]) -> String {
    let mut lines = Vec::new();
    for (_, is_return, index) in events(operations) {
        let operation = &operations[index];
        let (function, value) = match operation.function {
            0 => (
                "read",
                if is_return {
                    json(operation.first)
                } else {
                    "null".into()
                },
            ),
            1 => ("write", json(operation.first)),
            _ => (
                "cas",
                format!("[{},{}]", json(operation.first), json(operation.second)),
            ),
        };
        let kind = match (is_return, operation.ending) {
            (false, _) => "invoke",
            (true, 0) => "ok",
            (true, 1) => "fail",
            _ => "info",
        };
        lines.push(format!(
            r#"{{"process":{index},"type":"{kind}","f":"{function}","value":{value}}}"#
        ));
    }
    lines.join("\n")
}

/// Every order that respects real time, trying each op that no remaining op must precede;
/// indeterminate ops may also be dropped (never take effect). Written independently of the checker.
fn brute_force(operations: &[Tiny]) -> bool {
    let mut call_at = vec![0usize; operations.len()];
    let mut return_at = vec![usize::MAX; operations.len()];
    for (position, (_, is_return, index)) in events(operations).into_iter().enumerate() {
        if !is_return {
            call_at[index] = position;
        } else if operations[index].ending == 0 {
            return_at[index] = position;
        }
    }
    let remaining: Vec<usize> = (0..operations.len())
        .filter(|&index| operations[index].ending != 1)
        .filter(|&index| !(operations[index].function == 0 && operations[index].ending != 0))
        .collect();
    explore(operations, &call_at, &return_at, &remaining, -1)
}

fn explore(
    operations: &[Tiny],
    call_at: &[usize],
    return_at: &[usize],
    remaining: &[usize],
    state: i64,
) -> bool {
    if remaining.is_empty() {
        return true;
    }
    for &candidate in remaining {
        let blocked = remaining
            .iter()
            .any(|&other| other != candidate && return_at[other] < call_at[candidate]);
        if blocked {
            continue;
        }
        let rest: Vec<usize> = remaining
            .iter()
            .copied()
            .filter(|&index| index != candidate)
            .collect();
        let operation = &operations[candidate];
        let determinate = operation.ending == 0;
        let next = match operation.function {
            0 => (state == operation.first).then_some(state),
            1 => Some(operation.first),
            _ if state == operation.first => Some(operation.second),
            _ if determinate => None,
            _ => Some(state),
        };
        if next.is_some_and(|next| explore(operations, call_at, return_at, &rest, next)) {
            return true;
        }
        if !determinate && explore(operations, call_at, return_at, &rest, state) {
            return true;
        }
    }
    false
}

/// The brute-force comparison is not vacuous: over many seeded tiny histories both verdicts occur
/// often, and the checker agrees with brute force on every one.
#[test]
fn tiny_histories_cover_both_verdicts() {
    let mut seed: u64 = 7;
    let mut next = move |bound: u64| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % bound
    };
    let (mut linearizable, mut not_linearizable) = (0, 0);
    for _ in 0..3_000 {
        let count = 1 + next(5) as usize;
        let operations: Vec<Tiny> = (0..count)
            .map(|_| Tiny {
                function: next(3) as u8,
                first: next(4) as i64 - 1,
                second: next(4) as i64 - 1,
                ending: [0u8, 0, 0, 1, 2, 3][next(6) as usize],
                call_key: next(1_000) as u32,
                return_key: next(1_000) as u32,
            })
            .collect();
        let text = render(&operations);
        let verdict = linearizability::check(&History::from_jsonl(&text).expect("parses"));
        assert_eq!(
            verdict.is_linearizable(),
            brute_force(&operations),
            "{text}"
        );
        if verdict.is_linearizable() {
            linearizable += 1;
        } else {
            not_linearizable += 1;
        }
    }
    assert!(
        linearizable > 500 && not_linearizable > 500,
        "{linearizable} / {not_linearizable}"
    );
}
