//! Test helpers: a seeded random editor and a generator of concurrent-variant traces.

#![allow(dead_code)]

use std::collections::BTreeSet;

use text::Document;

/// A small deterministic random number generator (xorshift64*), so tests need no RNG crate.
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (any value).
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Characters the random editor types: ASCII, accented, CJK and astral (emoji).
const ALPHABET: &[char] = &[
    'a', 'b', 'c', 'd', ' ', 'é', 'ß', '中', '文', '😀', '🎉', '\n',
];

/// A random string of 1..=max characters.
pub fn random_text(rng: &mut Rng, max: u64) -> String {
    let len = 1 + rng.below(max);
    (0..len)
        .map(|_| ALPHABET[rng.below(ALPHABET.len() as u64) as usize])
        .collect()
}

/// One random patch for a document of `len` characters: `(pos, deleted, inserted)`, with
/// inserts, deletes and replacements.
pub fn random_patch(rng: &mut Rng, len: u64) -> (u64, u64, String) {
    let pos = rng.below(len + 1);
    let room = len - pos;
    match rng.below(3) {
        0 if room > 0 => (pos, 1 + rng.below(room.min(6)), String::new()),
        1 if room > 0 => (pos, 1 + rng.below(room.min(3)), random_text(rng, 4)),
        _ => (pos, 0, random_text(rng, 6)),
    }
}

/// Applies a patch as local edits.
pub fn apply_patch(doc: &mut Document, (pos, deleted, inserted): &(u64, u64, String)) {
    doc.delete(*pos..*pos + *deleted)
        .expect("patch range is inside the document");
    doc.insert(*pos, inserted)
        .expect("patch position is inside the document");
}

/// Generates a concurrent-variant trace as JSON: `agents` replicas make `txns` transactions
/// (1–3 patches each), syncing with a random other replica now and then. Each transaction
/// records as parents the heads of what its replica had seen. Returns the JSON and the text
/// every replica holds after a full sync.
pub fn concurrent_trace(seed: u64, agents: usize, txns: usize) -> (String, String) {
    let mut rng = Rng::new(seed);
    let mut docs: Vec<Document> = (0..agents).map(|a| Document::new(a as u64)).collect();
    // Per agent: the heads (latest transactions) of what it has seen; per transaction: every
    // transaction it was made on top of.
    let mut heads: Vec<Vec<usize>> = vec![Vec::new(); agents];
    let mut ancestors: Vec<BTreeSet<usize>> = Vec::new();
    let mut seen: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); agents];
    let mut entries = Vec::new();
    for index in 0..txns {
        let agent = rng.below(agents as u64) as usize;
        if rng.below(3) == 0 {
            let other = rng.below(agents as u64) as usize;
            if other != agent {
                let (a, b) = if agent < other {
                    let (l, r) = docs.split_at_mut(other);
                    (&mut l[agent], &mut r[0])
                } else {
                    let (l, r) = docs.split_at_mut(agent);
                    (&mut r[0], &mut l[other])
                };
                a.merge(b).expect("merge succeeds");
                let theirs = seen[other].clone();
                seen[agent].extend(theirs);
                let mut union: Vec<usize> =
                    heads[agent].iter().chain(&heads[other]).copied().collect();
                union.sort_unstable();
                union.dedup();
                heads[agent] = union
                    .iter()
                    .copied()
                    .filter(|t| !union.iter().any(|u| ancestors[*u].contains(t)))
                    .collect();
            }
        }
        let parents = heads[agent].clone();
        let mut patches = Vec::new();
        for _ in 0..1 + rng.below(3) {
            let patch = random_patch(&mut rng, docs[agent].len());
            apply_patch(&mut docs[agent], &patch);
            patches.push(serde_json::json!([patch.0, patch.1, patch.2]));
        }
        ancestors.push(seen[agent].clone());
        seen[agent].insert(index);
        heads[agent] = vec![index];
        entries.push(serde_json::json!({
            "time": "2026-01-01T00:00:00.000Z",
            "agent": agent,
            "parents": parents,
            "numChildren": 0,
            "patches": patches,
        }));
    }
    let mut everything = Document::new(u64::MAX);
    for doc in &mut docs {
        everything.merge(doc).expect("merge succeeds");
    }
    let end = everything.text();
    let json = serde_json::json!({
        "kind": "concurrent",
        "numAgents": agents,
        "endContent": end,
        "txns": entries,
    });
    (json.to_string(), end)
}
