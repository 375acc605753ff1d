//! Goal: the classic small histories get the right verdict, with a useful counterexample, and
//! malformed input is rejected with its line number. Method: hand-written histories in each format.

use check::history::{Call, Format, History, Outcome, ParseError, Value};
use check::linearizability::{self, Counterexample, Verdict};

/// Builds a concur history from compact lines `process type f key value`.
fn history(lines: &[&str]) -> History {
    let text: Vec<String> = lines
        .iter()
        .enumerate()
        .map(|(index, line)| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let value = fields.get(4).copied().unwrap_or("null");
            format!(
                r#"{{"process":{},"type":"{}","f":"{}","key":"{}","value":{value},"time":{}}}"#,
                fields[0],
                fields[1],
                fields[2],
                fields[3],
                (index + 1) * 100
            )
        })
        .collect();
    History::from_jsonl(&text.join("\n")).expect("test history parses")
}

fn counterexample(history: &History) -> Counterexample {
    match linearizability::check(history) {
        Verdict::NotLinearizable(counterexample) => counterexample,
        Verdict::Linearizable => panic!("expected not linearizable: {history:?}"),
    }
}

fn assert_linearizable(history: &History) {
    let verdict = linearizability::check(history);
    assert!(
        verdict.is_linearizable(),
        "expected linearizable, got {verdict:?}"
    );
}

#[test]
fn empty_history_is_linearizable() {
    assert_linearizable(&History::from_jsonl("").expect("empty parses"));
    assert_linearizable(&History::from_jsonl("\n\n").expect("blank parses"));
}

#[test]
fn stale_read_is_caught_and_explained() {
    let history = history(&[
        "0 invoke write x 1",
        "0 ok write x 1",
        "0 invoke write x 2",
        "0 ok write x 2",
        "1 invoke read x",
        "1 ok read x 1",
    ]);
    let counterexample = counterexample(&history);
    assert_eq!(counterexample.key, "x");
    assert_eq!(counterexample.operation.process, 1);
    assert_eq!(counterexample.operation.outcome, Outcome::Ok(Value::Int(1)));
    assert_eq!(counterexample.possible_states, vec!["2"]);
    assert_eq!(counterexample.prefix_length, 2);
    let text = counterexample.to_string();
    assert!(text.contains("read -> 1"), "{text}");
    assert!(text.contains("invoked line 5, returned line 6"), "{text}");
    assert!(text.contains("write 2 ok"), "{text}");
}

#[test]
fn lost_write_is_caught() {
    // Both writes complete, one after the other; a later read sees neither.
    let history = history(&[
        "0 invoke write x 1",
        "0 ok write x 1",
        "1 invoke write x 2",
        "1 ok write x 2",
        "2 invoke read x",
        "2 ok read x null",
    ]);
    let counterexample = counterexample(&history);
    assert_eq!(counterexample.operation.process, 2);
    assert_eq!(counterexample.possible_states, vec!["2"]);
}

#[test]
fn concurrent_writes_may_take_effect_in_either_order() {
    let first = [
        "0 invoke write x 1",
        "1 invoke write x 2",
        "0 ok write x 1",
        "1 ok write x 2",
    ];
    for last in [1, 2] {
        let mut lines = first.to_vec();
        let read = format!("2 ok read x {last}");
        lines.extend(["2 invoke read x", read.as_str()]);
        assert_linearizable(&history(&lines));
    }
    // But every reader must see the same order.
    let mut lines = first.to_vec();
    lines.extend([
        "2 invoke read x",
        "2 ok read x 2",
        "2 invoke read x",
        "2 ok read x 1",
    ]);
    let counterexample = counterexample(&history(&lines));
    assert_eq!(counterexample.operation.outcome, Outcome::Ok(Value::Int(1)));
}

#[test]
fn read_concurrent_with_a_write_may_see_either_value() {
    for seen in ["null", "1"] {
        let read = format!("1 ok read x {seen}");
        assert_linearizable(&history(&[
            "0 invoke write x 1",
            "1 invoke read x",
            read.as_str(),
            "0 ok write x 1",
        ]));
    }
    // Once one read saw the new value, a later read may not see the old one.
    let counterexample = counterexample(&history(&[
        "0 invoke write x 1",
        "1 invoke read x",
        "1 ok read x 1",
        "2 invoke read x",
        "2 ok read x null",
        "0 ok write x 1",
    ]));
    assert_eq!(counterexample.operation.process, 2);
    assert_eq!(counterexample.window.len(), 1, "the write still pending");
    assert!(!counterexample.window[0].placed || counterexample.window[0].operation.process == 0);
}

#[test]
fn indeterminate_write_may_appear_later_or_never() {
    let base = ["0 invoke write x 5", "0 info write x 5"];
    // It takes effect long after its client gave up.
    let mut later = base.to_vec();
    later.extend([
        "1 invoke read x",
        "1 ok read x null",
        "1 invoke read x",
        "1 ok read x 5",
    ]);
    assert_linearizable(&history(&later));
    // It never takes effect.
    let mut never = base.to_vec();
    never.extend(["1 invoke read x", "1 ok read x null"]);
    assert_linearizable(&history(&never));
    // A write that was invoked and never completed at all behaves the same.
    assert_linearizable(&history(&[
        "0 invoke write x 5",
        "1 invoke read x",
        "1 ok read x 5",
    ]));
    // But once seen it cannot be unseen.
    let mut flicker = base.to_vec();
    flicker.extend([
        "1 invoke read x",
        "1 ok read x 5",
        "1 invoke read x",
        "1 ok read x null",
    ]);
    let counterexample = counterexample(&history(&flicker));
    assert_eq!(counterexample.operation.outcome, Outcome::Ok(Value::Null));
    // An indeterminate operation may take effect only after its invocation.
    let early = counterexample_of(&["1 invoke read x", "1 ok read x 5", "0 invoke write x 5"]);
    assert_eq!(early.operation.process, 1);
}

fn counterexample_of(lines: &[&str]) -> Counterexample {
    counterexample(&history(lines))
}

#[test]
fn failed_operations_did_not_happen() {
    // A failed cas is dropped: reading its new value later is impossible.
    let counterexample = counterexample_of(&[
        "0 invoke cas x [null,7]",
        "0 fail cas x [null,7]",
        "1 invoke read x",
        "1 ok read x 7",
    ]);
    assert_eq!(counterexample.operation.process, 1);
    assert_eq!(counterexample.possible_states, vec!["null"]);
    // A failed write, likewise.
    let history = history(&[
        "0 invoke write x 3",
        "0 fail write x 3",
        "1 invoke read x",
        "1 ok read x null",
    ]);
    assert_linearizable(&history);
    assert_eq!(history.operations()[0].outcome, Outcome::Failed);
}

#[test]
fn compare_and_set_applies_only_when_the_precondition_holds() {
    assert_linearizable(&history(&[
        "0 invoke write x 5",
        "0 ok write x 5",
        "0 invoke cas x [5,7]",
        "0 ok cas x [5,7]",
        "1 invoke read x",
        "1 ok read x 7",
    ]));
    let counterexample = counterexample_of(&[
        "0 invoke write x 5",
        "0 ok write x 5",
        "0 invoke cas x [4,7]",
        "0 ok cas x [4,7]",
    ]);
    assert_eq!(
        counterexample.operation.call,
        Call::Cas {
            expected: Value::Int(4),
            new: Value::Int(7)
        }
    );
    // An indeterminate cas applies if its precondition held when it took effect.
    assert_linearizable(&history(&[
        "0 invoke write x 5",
        "0 ok write x 5",
        "0 invoke cas x [5,7]",
        "0 info cas x [5,7]",
        "1 invoke read x",
        "1 ok read x 7",
    ]));
}

#[test]
fn append_concatenates_strings_and_get_put_are_aliases() {
    assert_linearizable(&history(&[
        r#"0 invoke put x "a""#,
        r#"0 ok put x "a""#,
        r#"0 invoke append x "b""#,
        r#"0 ok append x "b""#,
        "1 invoke get x",
        r#"1 ok get x "ab""#,
        r#"1 invoke append y "c""#,
        r#"1 ok append y "c""#,
        "1 invoke read y",
        r#"1 ok read y "c""#,
    ]));
    let counterexample = counterexample_of(&[
        r#"0 invoke append x "a""#,
        r#"0 ok append x "a""#,
        r#"0 invoke append x "b""#,
        r#"0 ok append x "b""#,
        "1 invoke get x",
        r#"1 ok get x "ba""#,
    ]);
    assert_eq!(counterexample.possible_states, vec![r#""ab""#]);
}

#[test]
fn keys_are_checked_independently_and_the_failing_one_is_named() {
    let counterexample = counterexample_of(&[
        "0 invoke write x 1",
        "0 ok write x 1",
        "1 invoke write y 1",
        "1 ok write y 1",
        "0 invoke read x",
        "0 ok read x 1",
        "1 invoke read y",
        "1 ok read y 2",
    ]);
    assert_eq!(counterexample.key, "y");
    assert_eq!(counterexample.operations_on_key, 2);
}

#[test]
fn jepsen_log_follows_porcupine_semantics() {
    let log = "noise line\n\
        INFO  jepsen.util - 0\t:invoke\t:write\t3\n\
        INFO  jepsen.util - 0\t:ok\t:write\t3\n\
        INFO  jepsen.util - 1\t:invoke\t:cas\t[3 4]\n\
        INFO  jepsen.util - 1\t:fail\t:cas\t[3 4]\n";
    // The cas was rejected although the register held 3 and nothing else ran: not linearizable.
    let history = History::parse(log, Format::Auto).expect("parses");
    assert_eq!(history.format(), Format::JepsenEtcd);
    assert_eq!(history.operations()[1].outcome, Outcome::Rejected);
    assert_eq!(counterexample(&history).possible_states, vec!["3"]);
    // `:info` is ignored, leaving the write indeterminate; a timed-out read accepts anything.
    let log = "INFO  jepsen.util - 0\t:invoke\t:write\t3\n\
        INFO  jepsen.util - 0\t:info\t:write\t:timed-out\n\
        INFO  jepsen.util - 1\t:invoke\t:read\tnil\n\
        INFO  jepsen.util - 1\t:fail\t:read\t:timed-out\n\
        INFO  jepsen.util - 2\t:invoke\t:read\tnil\n\
        INFO  jepsen.util - 2\t:ok\t:read\t3\n";
    let history = History::parse(log, Format::JepsenEtcd).expect("parses");
    assert!(
        history
            .operations()
            .iter()
            .take(2)
            .all(|operation| operation.is_indeterminate())
    );
    assert_linearizable(&history);
}

#[test]
fn porcupine_kv_missing_keys_read_as_empty_strings() {
    let ok = "{:process 0, :type :invoke, :f :get, :key \"5\", :value nil}\n\
        {:process 0, :type :ok, :f :get, :key \"5\", :value \"\"}\n";
    let history = History::parse(ok, Format::Auto).expect("parses");
    assert_eq!(history.format(), Format::PorcupineKv);
    assert_linearizable(&history);
    let bad = "{:process 0, :type :invoke, :f :get, :key \"5\", :value nil}\n\
        {:process 0, :type :ok, :f :get, :key \"5\", :value \"x\"}\n";
    let counterexample = counterexample(&History::parse(bad, Format::Auto).expect("parses"));
    assert_eq!(counterexample.possible_states, vec![r#""""#]);
}

fn line_of(result: Result<History, ParseError>) -> usize {
    result
        .expect_err("must be rejected")
        .line()
        .expect("names a line")
}

#[test]
fn malformed_concur_lines_are_rejected_with_their_line_number() {
    let ok = r#"{"process":1,"type":"invoke","f":"read","key":"x","value":null}"#;
    let cases = [
        (
            r#"{"process":1,"type":"invoke","f":"read""#,
            "invalid event",
        ),
        (r#"{"type":"invoke","f":"read"}"#, "missing field `process`"),
        (r#"{"process":1,"type":"start","f":"read"}"#, "unknown type"),
        (r#"{"process":1,"type":"invoke","f":"delete"}"#, "unknown f"),
        (
            r#"{"process":1,"type":"invoke","f":"write","value":1.5}"#,
            "64-bit signed integer",
        ),
        (
            r#"{"process":1,"type":"invoke","f":"write","value":true}"#,
            "must be null",
        ),
        (
            r#"{"process":1,"type":"invoke","f":"cas","value":[1]}"#,
            "cas needs value",
        ),
        (
            r#"{"process":1,"type":"invoke","f":"append","value":3}"#,
            "append needs a string",
        ),
        (
            r#"{"process":1,"type":"invoke","f":"read","key":[1]}"#,
            "key must be",
        ),
        (
            r#"{"process":2,"type":"ok","f":"read","value":1}"#,
            "never invoked",
        ),
    ];
    for (bad, message) in cases {
        let text = format!("\n{ok}\n{bad}\n");
        let error = History::from_jsonl(&text).expect_err(bad);
        assert_eq!(error.line(), Some(3), "{bad}: {error}");
        assert!(error.to_string().contains(message), "{bad}: {error}");
    }
    let twice = format!("{ok}\n{ok}");
    let error = History::from_jsonl(&twice).expect_err("two outstanding operations");
    assert!(error.to_string().contains("still outstanding"), "{error}");
    let mismatch = format!(
        "{ok}\n{}",
        r#"{"process":1,"type":"ok","f":"read","key":"y","value":1}"#
    );
    assert_eq!(line_of(History::from_jsonl(&mismatch)), 2);
}

#[test]
fn malformed_lines_of_other_formats_are_rejected_with_their_line_number() {
    let jepsen =
        "INFO  jepsen.util - 0\t:invoke\t:write\t3\nINFO  jepsen.util - x\t:ok\t:write\t3\n";
    assert_eq!(line_of(History::parse(jepsen, Format::Auto)), 2);
    let jepsen = "INFO  jepsen.util - 0\t:invoke\t:cas\t[3]\n";
    assert_eq!(line_of(History::parse(jepsen, Format::JepsenEtcd)), 1);
    let kv =
        "{:process 0, :type :invoke, :f :get, :key \"5\", :value nil}\n{:process 0, :type :ok}\n";
    assert_eq!(line_of(History::parse(kv, Format::Auto)), 2);
    let kv = "{:process 0, :type :invoke, :f :get, :key \"5, :value nil}\n";
    assert_eq!(line_of(History::parse(kv, Format::PorcupineKv)), 1);
    assert_eq!(line_of(History::parse("\n\nhello\n", Format::Auto)), 3);
}

#[test]
fn loading_a_missing_file_is_an_error_not_a_panic() {
    let error = check::history::load(std::path::Path::new("/nonexistent/history"), Format::Auto)
        .expect_err("no such file");
    assert!(error.line().is_none());
    assert!(error.to_string().contains("/nonexistent/history"));
}

#[test]
fn step_budget_bounds_the_search() {
    let text = check::synthetic::generate(&check::synthetic::SyntheticConfig {
        operations: 2_000,
        keys: 1,
        clients: 8,
        ..Default::default()
    });
    let history = History::from_jsonl(&text).expect("parses");
    let exhausted = linearizability::check_bounded(&history, &linearizability::Register, 10)
        .expect_err("10 steps are not enough");
    assert_eq!(exhausted.key, "k0");
    let verdict = linearizability::check_bounded(&history, &linearizability::Register, u64::MAX)
        .expect("finishes");
    assert!(verdict.is_linearizable());
}
