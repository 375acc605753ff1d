//! Replays a trace file many times (for profiling): `cargo run --release --example replay FILE [RUNS]`.

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: replay FILE [RUNS]");
    let runs: usize = args
        .next()
        .map_or(10, |r| r.parse().expect("RUNS is a number"));
    let bytes = std::fs::read(&path).expect("trace file is readable");
    let trace = text::trace::Trace::parse(&bytes).expect("trace parses");
    if trace.is_concurrent() {
        let mut times = Vec::new();
        for _ in 0..runs {
            let start = std::time::Instant::now();
            let replicas = text::trace::replay_concurrent(&trace).expect("trace replays");
            times.push(start.elapsed());
            assert!(replicas.iter().all(|r| r.text() == replicas[0].text()));
        }
        times.sort();
        println!("concurrent replay median {:?}", times[times.len() / 2]);
        return;
    }
    let patches = trace.flat_patches();
    let mut times = Vec::new();
    for _ in 0..runs {
        let start = std::time::Instant::now();
        let doc =
            text::trace::replay_patches(&trace.start_content, &patches).expect("trace replays");
        times.push(start.elapsed());
        assert_eq!(doc.len() as usize, trace.end_content.chars().count());
    }
    times.sort();
    println!("replay median {:?}", times[times.len() / 2]);
    let doc = text::trace::replay_patches(&trace.start_content, &patches).expect("replays");
    let encoded = doc.encode();
    let mut times = Vec::new();
    for _ in 0..runs * 10 {
        let start = std::time::Instant::now();
        let loaded = text::Document::decode(&encoded, 1).expect("decodes");
        times.push(start.elapsed());
        assert_eq!(loaded.len(), doc.len());
    }
    times.sort();
    println!(
        "load median {:?} ({} bytes)",
        times[times.len() / 2],
        encoded.len()
    );
}
