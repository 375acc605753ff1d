//! Command parsing, one test per command family. Expected error texts were taken from a real
//! `redis-server` 7.0 answering the same requests.

use node::command::{Command, CommandError, NAMES, SetCondition, parse};

/// Splits `line` on spaces into arguments and parses them.
fn parse_line(line: &str) -> Result<Command, CommandError> {
    parse(
        line.split(' ')
            .map(|word| word.as_bytes().to_vec())
            .collect(),
    )
}

/// The parsed command, which must be valid.
fn command(line: &str) -> Command {
    parse_line(line).unwrap_or_else(|error| panic!("{line:?} should parse, got {error}"))
}

/// The error text, which must be an error.
fn error(line: &str) -> String {
    match parse_line(line) {
        Ok(command) => panic!("{line:?} should fail, parsed {command:?}"),
        Err(error) => error.to_string(),
    }
}

/// Bytes of a string.
fn b(text: &str) -> Vec<u8> {
    text.as_bytes().to_vec()
}

#[test]
fn names_are_case_insensitive_and_unknown_ones_quote_their_arguments() {
    assert_eq!(command("gEt k"), Command::Get(b("k")));
    assert_eq!(command("GET k"), command("get k"));
    assert_eq!(
        error("FOO a b"),
        "ERR unknown command 'FOO', with args beginning with: 'a' 'b' "
    );
    assert_eq!(
        error("FOO"),
        "ERR unknown command 'FOO', with args beginning with: "
    );
    let long = format!("FOO {} {}", "x".repeat(200), "y");
    assert_eq!(
        error(&long),
        format!(
            "ERR unknown command 'FOO', with args beginning with: '{}' ",
            "x".repeat(128)
        )
    );
    assert_eq!(
        parse(Vec::new()).unwrap_err().to_string(),
        "ERR unknown command '', with args beginning with: "
    );
}

#[test]
fn connection_commands() {
    assert_eq!(command("PING"), Command::Ping(None));
    assert_eq!(command("PING hi"), Command::Ping(Some(b("hi"))));
    assert_eq!(
        error("PING a b"),
        "ERR wrong number of arguments for 'ping' command"
    );
    assert_eq!(command("ECHO x"), Command::Echo(b("x")));
    assert_eq!(
        error("ECHO"),
        "ERR wrong number of arguments for 'echo' command"
    );
    assert_eq!(
        error("ECHO a b"),
        "ERR wrong number of arguments for 'echo' command"
    );
    assert_eq!(command("SELECT 0"), Command::Select(0));
    assert_eq!(
        error("SELECT x"),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(command("QUIT"), Command::Quit);
    assert_eq!(command("QUIT a b"), Command::Quit);
    assert_eq!(
        command("AUTH pw"),
        Command::Auth {
            username: None,
            password: b("pw")
        }
    );
    assert_eq!(
        command("AUTH me pw"),
        Command::Auth {
            username: Some(b("me")),
            password: b("pw")
        }
    );
    assert_eq!(error("AUTH a b c"), "ERR syntax error");
    assert_eq!(
        error("AUTH"),
        "ERR wrong number of arguments for 'auth' command"
    );
}

#[test]
fn hello_checks_version_then_options() {
    assert_eq!(
        command("HELLO"),
        Command::Hello {
            protocol: None,
            auth: None,
            client_name: None
        }
    );
    assert_eq!(
        command("HELLO 3 auth default secret SETNAME app"),
        Command::Hello {
            protocol: Some(3),
            auth: Some((b("default"), b("secret"))),
            client_name: Some(b("app")),
        }
    );
    assert_eq!(
        error("HELLO x"),
        "ERR Protocol version is not an integer or out of range"
    );
    assert_eq!(error("HELLO 300"), "NOPROTO unsupported protocol version");
    assert_eq!(
        error("HELLO -1 FOO"),
        "NOPROTO unsupported protocol version"
    );
    assert_eq!(
        error("HELLO 3 FOO"),
        "ERR Syntax error in HELLO option 'FOO'"
    );
    assert_eq!(
        error("HELLO 3 AUTH a"),
        "ERR Syntax error in HELLO option 'AUTH'"
    );
    assert_eq!(
        error("HELLO 2 SETNAME"),
        "ERR Syntax error in HELLO option 'SETNAME'"
    );
}

#[test]
fn set_options_follow_redis_and_expiry_is_refused() {
    let set = |condition, get| Command::Set {
        key: b("k"),
        value: b("v"),
        condition,
        get,
    };
    assert_eq!(command("SET k v"), set(SetCondition::Always, false));
    assert_eq!(command("SET k v nx"), set(SetCondition::IfAbsent, false));
    assert_eq!(
        command("SET k v XX GET"),
        set(SetCondition::IfPresent, true)
    );
    assert_eq!(command("SET k v GET NX"), set(SetCondition::IfAbsent, true));
    assert_eq!(command("SET k v NX NX"), set(SetCondition::IfAbsent, false));
    assert_eq!(command("SET k v KEEPTTL"), set(SetCondition::Always, false));
    assert_eq!(error("SET k v NX XX"), "ERR syntax error");
    assert_eq!(error("SET k v FOO"), "ERR syntax error");
    assert_eq!(error("SET k v EX"), "ERR syntax error");
    assert_eq!(error("SET k v EX 10 PX 5"), "ERR syntax error");
    assert_eq!(error("SET k v KEEPTTL EX 5"), "ERR syntax error");
    assert_eq!(error("SET k v EX 5 KEEPTTL"), "ERR syntax error");
    // Syntax is checked before the expiry value, as Redis does.
    assert_eq!(error("SET k v EX x NX XX"), "ERR syntax error");
    assert_eq!(
        error("SET k v EX x"),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        error("SET k v EX 0"),
        "ERR invalid expire time in 'set' command"
    );
    for valid in [
        "SET k v EX 10",
        "SET k v px 5",
        "SET k v EXAT 1700000000",
        "SET k v PXAT 1",
        "SET k v EX 5 EX 5",
    ] {
        assert_eq!(
            error(valid),
            "ERR concur does not support key expiry",
            "{valid}"
        );
    }
    assert_eq!(
        error("SET k"),
        "ERR wrong number of arguments for 'set' command"
    );
}

#[test]
fn string_commands() {
    assert_eq!(command("DEL a b"), Command::Del(vec![b("a"), b("b")]));
    assert_eq!(command("EXISTS a"), Command::Exists(vec![b("a")]));
    assert_eq!(
        command("MGET a b c"),
        Command::MGet(vec![b("a"), b("b"), b("c")])
    );
    assert_eq!(
        command("MSET a 1 b 2"),
        Command::MSet(vec![(b("a"), b("1")), (b("b"), b("2"))])
    );
    assert_eq!(command("TYPE k"), Command::Type(b("k")));
    for wrong in [
        "DEL",
        "EXISTS",
        "MGET",
        "MSET",
        "MSET a",
        "MSET a 1 b",
        "TYPE",
        "GET a b",
    ] {
        let name = wrong.split(' ').next().unwrap().to_ascii_lowercase();
        assert_eq!(
            error(wrong),
            format!("ERR wrong number of arguments for '{name}' command")
        );
    }
}

#[test]
fn increments_and_decrements_are_one_command() {
    assert_eq!(
        command("INCR k"),
        Command::IncrBy {
            key: b("k"),
            delta: 1
        }
    );
    assert_eq!(
        command("DECR k"),
        Command::IncrBy {
            key: b("k"),
            delta: -1
        }
    );
    assert_eq!(
        command("INCRBY k -7"),
        Command::IncrBy {
            key: b("k"),
            delta: -7
        }
    );
    assert_eq!(
        command("DECRBY k 7"),
        Command::IncrBy {
            key: b("k"),
            delta: -7
        }
    );
    assert_eq!(
        command("DECRBY k 9223372036854775807"),
        Command::IncrBy {
            key: b("k"),
            delta: -i64::MAX
        }
    );
    assert_eq!(
        error("DECRBY k -9223372036854775808"),
        "ERR decrement would overflow"
    );
    assert_eq!(
        error("INCRBY k 1.5"),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        error("INCRBY k 9223372036854775808"),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        error("INCR"),
        "ERR wrong number of arguments for 'incr' command"
    );
    assert_eq!(
        error("DECRBY k"),
        "ERR wrong number of arguments for 'decrby' command"
    );
    assert_eq!(command("INCR k").name(), "incrby");
}

#[test]
fn set_type_commands() {
    assert_eq!(
        command("SADD s a b"),
        Command::SAdd {
            key: b("s"),
            members: vec![b("a"), b("b")]
        }
    );
    assert_eq!(
        command("SREM s a"),
        Command::SRem {
            key: b("s"),
            members: vec![b("a")]
        }
    );
    assert_eq!(command("SMEMBERS s"), Command::SMembers(b("s")));
    assert_eq!(
        command("SISMEMBER s a"),
        Command::SIsMember {
            key: b("s"),
            member: b("a")
        }
    );
    assert_eq!(command("SCARD s"), Command::SCard(b("s")));
    for wrong in ["SADD s", "SREM s", "SMEMBERS", "SISMEMBER s", "SCARD a b"] {
        let name = wrong.split(' ').next().unwrap().to_ascii_lowercase();
        assert_eq!(
            error(wrong),
            format!("ERR wrong number of arguments for '{name}' command")
        );
    }
}

#[test]
fn hash_commands() {
    assert_eq!(
        command("HSET h f 1 g 2"),
        Command::HSet {
            key: b("h"),
            pairs: vec![(b("f"), b("1")), (b("g"), b("2"))]
        }
    );
    assert_eq!(
        command("HGET h f"),
        Command::HGet {
            key: b("h"),
            field: b("f")
        }
    );
    assert_eq!(
        command("HDEL h f g"),
        Command::HDel {
            key: b("h"),
            fields: vec![b("f"), b("g")]
        }
    );
    assert_eq!(command("HGETALL h"), Command::HGetAll(b("h")));
    for wrong in ["HSET h f", "HSET h f 1 g", "HGET h", "HDEL h", "HGETALL"] {
        let name = wrong.split(' ').next().unwrap().to_ascii_lowercase();
        assert_eq!(
            error(wrong),
            format!("ERR wrong number of arguments for '{name}' command")
        );
    }
}

#[test]
fn server_and_handshake_commands() {
    assert_eq!(command("DBSIZE"), Command::DbSize);
    assert_eq!(
        error("DBSIZE x"),
        "ERR wrong number of arguments for 'dbsize' command"
    );
    assert_eq!(command("INFO"), Command::Info(None));
    assert_eq!(
        command("INFO Server KEYSPACE"),
        Command::Info(Some("server keyspace".into()))
    );
    // redis-cli 7 sends COMMAND DOCS on connect; COMMAND COUNT answers with NAMES.len().
    assert_eq!(command("COMMAND"), Command::Command(Vec::new()));
    assert_eq!(command("COMMAND DOCS"), Command::Command(vec![b("docs")]));
    assert_eq!(
        command("COMMAND Info GET"),
        Command::Command(vec![b("info"), b("GET")])
    );
    assert_eq!(
        error("COMMAND FOO"),
        "ERR unknown subcommand 'FOO'. Try COMMAND HELP."
    );
    assert!(NAMES.contains(&"command") && NAMES.len() == 32);
    // redis-benchmark asks for these two settings before it starts.
    assert_eq!(command("CONFIG GET save"), Command::ConfigGet(b("save")));
    assert_eq!(
        command("config get appendonly"),
        Command::ConfigGet(b("appendonly"))
    );
    assert_eq!(
        error("CONFIG GET"),
        "ERR wrong number of arguments for 'config|get' command"
    );
    assert_eq!(
        error("CONFIG"),
        "ERR wrong number of arguments for 'config' command"
    );
    assert_eq!(
        error("CONFIG SET save x"),
        "ERR concur does not support CONFIG SET"
    );
    assert_eq!(
        error("CONFIG FOO"),
        "ERR unknown subcommand 'FOO'. Try CONFIG HELP."
    );
    assert_eq!(command("CONCUR MODE ap:x"), Command::ConcurMode(b("ap:x")));
    assert_eq!(
        error("CONCUR MODE"),
        "ERR wrong number of arguments for 'concur|mode' command"
    );
    assert_eq!(
        error("CONCUR FOO"),
        "ERR unknown subcommand 'FOO'. Try CONCUR HELP."
    );
}

#[test]
fn client_subcommands() {
    assert_eq!(
        command("CLIENT SETNAME app-1"),
        Command::ClientSetName(b("app-1"))
    );
    assert_eq!(
        command("CLIENT SETNAME "),
        Command::ClientSetName(Vec::new())
    );
    assert_eq!(
        parse(vec![b("CLIENT"), b("SETNAME"), b("a b")])
            .unwrap_err()
            .to_string(),
        "ERR Client names cannot contain spaces, newlines or special characters."
    );
    assert_eq!(command("client getname"), Command::ClientGetName);
    assert_eq!(
        error("CLIENT GETNAME x"),
        "ERR wrong number of arguments for 'client|getname' command"
    );
    assert_eq!(command("CLIENT ID"), Command::ClientId);
    assert_eq!(
        command("CLIENT SETINFO LIB-NAME redis-py"),
        Command::ClientSetInfo
    );
    assert_eq!(
        command("CLIENT SETINFO lib-ver 5.0"),
        Command::ClientSetInfo
    );
    assert_eq!(
        error("CLIENT SETINFO foo x"),
        "ERR Unrecognized option 'foo'"
    );
    assert_eq!(command("CLIENT LIST"), Command::ClientOther("list".into()));
    assert_eq!(
        error("CLIENT FOO"),
        "ERR unknown subcommand 'FOO'. Try CLIENT HELP."
    );
    assert_eq!(
        error("CLIENT"),
        "ERR wrong number of arguments for 'client' command"
    );
}

#[test]
fn writes_and_keys_are_reported() {
    let writes = [
        "SET k v",
        "DEL k",
        "INCR k",
        "MSET k v",
        "SADD k m",
        "SREM k m",
        "HSET k f v",
        "HDEL k f",
    ];
    for line in writes {
        assert!(command(line).is_write(), "{line}");
    }
    let reads = [
        "GET k",
        "EXISTS k",
        "MGET k",
        "SMEMBERS k",
        "SISMEMBER k m",
        "SCARD k",
        "HGET k f",
        "HGETALL k",
        "TYPE k",
        "PING",
        "DBSIZE",
        "CONCUR MODE k",
    ];
    for line in reads {
        assert!(!command(line).is_write(), "{line}");
    }
    assert_eq!(command("MSET a 1 b 2").keys(), vec![&b"a"[..], b"b"]);
    assert_eq!(command("DEL a b c").keys().len(), 3);
    assert_eq!(command("HSET h f v").keys(), vec![&b"h"[..]]);
    assert!(command("PING").keys().is_empty());
    for name in NAMES {
        // Every name is recognised: it parses or fails on arguments, never as unknown.
        let result = parse(vec![name.as_bytes().to_vec()]);
        assert!(
            !matches!(result, Err(CommandError::UnknownCommand { .. })),
            "{name} is listed but unknown"
        );
    }
}
