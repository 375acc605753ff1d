//! Feeds arbitrary requests to the command parser: the bytes are cut into arguments at NUL bytes
//! (so the fuzzer can reach multi-argument commands quickly), with the first argument often
//! replaced by a known command name. Never a panic; an error's text is one Redis error line;
//! a command's keys are among its arguments.
#![no_main]

use libfuzzer_sys::fuzz_target;
use node::command::{NAMES, parse};

fuzz_target!(|bytes: &[u8]| {
    let mut args: Vec<Vec<u8>> = bytes.split(|&b| b == 0).map(<[u8]>::to_vec).collect();
    if let Some(first) = args.first_mut() {
        if let Some((&selector, rest)) = first.split_first() {
            if selector < 200 {
                // Most inputs name a real command, in mixed case, so parsing goes past the name.
                let name = NAMES[usize::from(selector) % NAMES.len()];
                let mixed: Vec<u8> = name
                    .bytes()
                    .zip(rest.iter().chain(std::iter::repeat(&0)))
                    .map(|(c, &flip)| {
                        if flip & 1 == 1 {
                            c.to_ascii_uppercase()
                        } else {
                            c
                        }
                    })
                    .collect();
                *first = mixed;
            }
        }
    }
    let original = args.clone();
    match parse(args) {
        Ok(command) => {
            assert!(NAMES.contains(&command.name()));
            for key in command.keys() {
                assert!(original[1..].iter().any(|arg| arg.as_slice() == key));
            }
        }
        Err(error) => {
            let text = error.to_string();
            assert!(text.starts_with("ERR ") || text.starts_with("NOPROTO "));
        }
    }
});
