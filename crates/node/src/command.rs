//! Redis commands: from a request's arguments to a typed command, with Redis-style errors.
//!
//! [`parse`] checks a command the way Redis 7 does before running it — name (any case), number
//! of arguments, integer arguments, option syntax — and answers with Redis's own error texts, so
//! clients and their test suites see what they expect. It knows nothing of keyspaces: the server
//! decides where each [`Command`] runs.
//!
//! concur has no key expiry: `SET` with `EX`, `PX`, `EXAT` or `PXAT` is checked as Redis checks
//! it, then refused with `ERR concur does not support key expiry`. `KEEPTTL` is accepted, since
//! with no time to live to keep it changes nothing.
//!
//! ```
//! use node::command::{Command, SetCondition, parse};
//!
//! let args = vec![b"set".to_vec(), b"k".to_vec(), b"v".to_vec(), b"NX".to_vec()];
//! let command = parse(args).unwrap();
//! assert_eq!(command.name(), "set");
//! assert!(command.is_write());
//! assert!(matches!(command, Command::Set { condition: SetCondition::IfAbsent, get: false, .. }));
//!
//! let error = parse(vec![b"GET".to_vec()]).unwrap_err();
//! assert_eq!(error.to_string(), "ERR wrong number of arguments for 'get' command");
//! ```

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::resp::parse_integer;

/// A key: any bytes.
pub type Key = Vec<u8>;

/// When `SET` writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SetCondition {
    /// Always (no option).
    #[default]
    Always,
    /// Only if the key does not exist (`NX`).
    IfAbsent,
    /// Only if the key exists (`XX`).
    IfPresent,
}

/// A parsed Redis command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// `PING [message]`.
    Ping(Option<Vec<u8>>),
    /// `ECHO message`.
    Echo(Vec<u8>),
    /// `HELLO [protover [AUTH username password] [SETNAME name]]`; the version is 2 or 3.
    Hello {
        /// Protocol to switch to.
        protocol: Option<u8>,
        /// Username and password to authenticate with.
        auth: Option<(Vec<u8>, Vec<u8>)>,
        /// Name to give the connection.
        client_name: Option<Vec<u8>>,
    },
    /// `AUTH [username] password`.
    Auth {
        /// The username, when given.
        username: Option<Vec<u8>>,
        /// The password.
        password: Vec<u8>,
    },
    /// `SELECT index` (concur has database 0 only; the server refuses others).
    Select(i64),
    /// `QUIT`: reply OK, then close.
    Quit,
    /// `GET key`.
    Get(Key),
    /// `SET key value [NX|XX] [GET] [KEEPTTL]`.
    Set {
        /// The key.
        key: Key,
        /// The new value.
        value: Vec<u8>,
        /// When to write.
        condition: SetCondition,
        /// Reply with the old value instead of OK.
        get: bool,
    },
    /// `DEL key [key ...]`.
    Del(Vec<Key>),
    /// `EXISTS key [key ...]`.
    Exists(Vec<Key>),
    /// `INCR`, `DECR`, `INCRBY`, `DECRBY`: add `delta` to an integer value.
    IncrBy {
        /// The key.
        key: Key,
        /// What to add (negative for the decrements).
        delta: i64,
    },
    /// `MGET key [key ...]`.
    MGet(Vec<Key>),
    /// `MSET key value [key value ...]`.
    MSet(Vec<(Key, Vec<u8>)>),
    /// `SADD key member [member ...]`.
    SAdd {
        /// The set's key.
        key: Key,
        /// Members to add.
        members: Vec<Vec<u8>>,
    },
    /// `SREM key member [member ...]`.
    SRem {
        /// The set's key.
        key: Key,
        /// Members to remove.
        members: Vec<Vec<u8>>,
    },
    /// `SMEMBERS key`.
    SMembers(Key),
    /// `SISMEMBER key member`.
    SIsMember {
        /// The set's key.
        key: Key,
        /// The member asked about.
        member: Vec<u8>,
    },
    /// `SCARD key`.
    SCard(Key),
    /// `HSET key field value [field value ...]`.
    HSet {
        /// The hash's key.
        key: Key,
        /// Fields and their new values.
        pairs: Vec<(Vec<u8>, Vec<u8>)>,
    },
    /// `HGET key field`.
    HGet {
        /// The hash's key.
        key: Key,
        /// The field.
        field: Vec<u8>,
    },
    /// `HDEL key field [field ...]`.
    HDel {
        /// The hash's key.
        key: Key,
        /// Fields to remove.
        fields: Vec<Vec<u8>>,
    },
    /// `HGETALL key`.
    HGetAll(Key),
    /// `TYPE key`.
    Type(Key),
    /// `DBSIZE`.
    DbSize,
    /// `INFO [section ...]`: the sections in lower case, joined by spaces.
    Info(Option<String>),
    /// `COMMAND [subcommand args...]`: the subcommand in lower case (`count`, `docs`, `info`,
    /// `list`, `getkeys`, `getkeysandflags`, `help`), then its arguments as sent.
    Command(Vec<Vec<u8>>),
    /// `CLIENT SETNAME name`.
    ClientSetName(Vec<u8>),
    /// `CLIENT SETINFO LIB-NAME|LIB-VER value` (client libraries send it on connect).
    ClientSetInfo,
    /// `CLIENT GETNAME`.
    ClientGetName,
    /// `CLIENT ID`.
    ClientId,
    /// Another `CLIENT` subcommand Redis knows (`list`, `info`, `kill`, ...), in lower case.
    ClientOther(String),
    /// `CONCUR MODE key`: which keyspace (strong or available) holds the key.
    ConcurMode(Key),
    /// `CONFIG GET pattern` (redis-benchmark asks for `save` and `appendonly`).
    ConfigGet(Vec<u8>),
}

/// Every command name [`parse`] accepts, in lower case (the answer to `COMMAND COUNT`).
pub const NAMES: &[&str] = &[
    "ping",
    "echo",
    "hello",
    "auth",
    "select",
    "quit",
    "get",
    "set",
    "del",
    "exists",
    "incr",
    "decr",
    "incrby",
    "decrby",
    "mget",
    "mset",
    "sadd",
    "srem",
    "smembers",
    "sismember",
    "scard",
    "hset",
    "hget",
    "hdel",
    "hgetall",
    "type",
    "dbsize",
    "info",
    "command",
    "client",
    "config",
    "concur",
];

/// Why a request is not a command concur runs. Display is the Redis error line without its `-`.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CommandError {
    /// A command name concur does not know.
    #[error("ERR unknown command '{name}', with args beginning with: {args}")]
    UnknownCommand {
        /// The name as sent (at most 128 bytes).
        name: String,
        /// The first arguments, each quoted and followed by a space (about 128 bytes at most).
        args: String,
    },
    /// A subcommand concur does not know.
    #[error("ERR unknown subcommand '{subcommand}'. Try {command} HELP.")]
    UnknownSubcommand {
        /// The command, in upper case.
        command: &'static str,
        /// The subcommand as sent.
        subcommand: String,
    },
    /// Too few or too many arguments.
    #[error("ERR wrong number of arguments for '{0}' command")]
    WrongArity(&'static str),
    /// An argument that must be a 64-bit integer is not.
    #[error("ERR value is not an integer or out of range")]
    NotAnInteger,
    /// Options that are unknown, incomplete or in conflict.
    #[error("ERR syntax error")]
    Syntax,
    /// `DECRBY key -9223372036854775808`: the negation does not fit.
    #[error("ERR decrement would overflow")]
    DecrementOverflow,
    /// A zero or negative expiry time in `SET`.
    #[error("ERR invalid expire time in 'set' command")]
    InvalidExpireTime,
    /// `SET` with a valid expiry option: concur keeps keys until they are deleted.
    #[error("ERR concur does not support key expiry")]
    ExpiryUnsupported,
    /// `HELLO` with a version that is not an integer.
    #[error("ERR Protocol version is not an integer or out of range")]
    ProtocolVersionNotInteger,
    /// `HELLO` with a version other than 2 or 3.
    #[error("NOPROTO unsupported protocol version")]
    UnsupportedProtocol,
    /// `HELLO` with an unknown or incomplete option.
    #[error("ERR Syntax error in HELLO option '{0}'")]
    HelloOption(String),
    /// A client name with spaces, newlines or other characters outside `!`..`~`.
    #[error("ERR Client names cannot contain spaces, newlines or special characters.")]
    InvalidClientName,
    /// `CLIENT SETINFO` with an attribute other than `LIB-NAME` or `LIB-VER`.
    #[error("ERR Unrecognized option '{0}'")]
    UnrecognizedOption(String),
    /// A feature Redis has and concur does not (named in the text).
    #[error("ERR concur does not support {0}")]
    Unsupported(&'static str),
}

/// Parses a request's arguments (command name first, any case) into a command.
pub fn parse(args: Vec<Vec<u8>>) -> Result<Command, CommandError> {
    let Some(name) = args.first() else {
        return Err(unknown_command(&[]));
    };
    let lower = name.to_ascii_lowercase();
    let Some(&name) = NAMES.iter().find(|known| known.as_bytes() == lower) else {
        return Err(unknown_command(&args));
    };
    let mut rest = args;
    rest.remove(0);
    match name {
        "ping" | "echo" | "hello" | "auth" | "select" | "quit" => parse_connection(name, rest),
        "get" | "set" | "del" | "exists" | "incr" | "decr" | "incrby" | "decrby" | "mget"
        | "mset" | "type" => parse_string(name, rest),
        "sadd" | "srem" | "smembers" | "sismember" | "scard" => parse_set_family(name, rest),
        "hset" | "hget" | "hdel" | "hgetall" => parse_hash(name, rest),
        _ => parse_server(name, rest),
    }
}

/// Redis's unknown-command error: the name and the first arguments, each cut at 128 bytes.
fn unknown_command(args: &[Vec<u8>]) -> CommandError {
    const LIMIT: usize = 128;
    let name = args.first().map_or(&[][..], |n| &n[..n.len().min(LIMIT)]);
    let mut quoted = Vec::new();
    for arg in args.iter().skip(1) {
        if quoted.len() >= LIMIT {
            break;
        }
        let room = LIMIT - quoted.len();
        quoted.push(b'\'');
        quoted.extend_from_slice(&arg[..arg.len().min(room)]);
        quoted.extend_from_slice(b"' ");
    }
    CommandError::UnknownCommand {
        name: String::from_utf8_lossy(name).into_owned(),
        args: String::from_utf8_lossy(&quoted).into_owned(),
    }
}

/// Checks that `args` (after the name) number between `min` and `max`.
fn arity(name: &'static str, args: &[Vec<u8>], min: usize, max: usize) -> Result<(), CommandError> {
    if (min..=max).contains(&args.len()) {
        Ok(())
    } else {
        Err(CommandError::WrongArity(name))
    }
}

/// The single argument of a one-argument command.
fn one(name: &'static str, args: Vec<Vec<u8>>) -> Result<Vec<u8>, CommandError> {
    let [only]: [Vec<u8>; 1] = args
        .try_into()
        .map_err(|_| CommandError::WrongArity(name))?;
    Ok(only)
}

/// The two arguments of a two-argument command.
fn two(name: &'static str, args: Vec<Vec<u8>>) -> Result<(Vec<u8>, Vec<u8>), CommandError> {
    let [first, second]: [Vec<u8>; 2] = args
        .try_into()
        .map_err(|_| CommandError::WrongArity(name))?;
    Ok((first, second))
}

/// The first argument and the rest, for commands of at least `min` arguments.
fn head_and_tail(
    name: &'static str,
    mut args: Vec<Vec<u8>>,
    min: usize,
) -> Result<(Vec<u8>, Vec<Vec<u8>>), CommandError> {
    arity(name, &args, min.max(1), usize::MAX)?;
    let tail = args.split_off(1);
    Ok((args.swap_remove(0), tail))
}

/// Pairs up `[a1, b1, a2, b2, ...]`; the caller checked the count is even.
fn pairs(args: Vec<Vec<u8>>) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut pairs = Vec::with_capacity(args.len() / 2);
    let mut args = args.into_iter();
    while let (Some(first), Some(second)) = (args.next(), args.next()) {
        pairs.push((first, second));
    }
    pairs
}

/// An integer argument.
fn integer(arg: &[u8]) -> Result<i64, CommandError> {
    parse_integer(arg).ok_or(CommandError::NotAnInteger)
}

/// PING, ECHO, HELLO, AUTH, SELECT, QUIT.
fn parse_connection(name: &'static str, args: Vec<Vec<u8>>) -> Result<Command, CommandError> {
    match name {
        "ping" => {
            arity(name, &args, 0, 1)?;
            Ok(Command::Ping(args.into_iter().next()))
        }
        "echo" => Ok(Command::Echo(one(name, args)?)),
        "hello" => parse_hello(args),
        "auth" => {
            arity(name, &args, 1, usize::MAX)?;
            let mut args = args.into_iter();
            match (args.next(), args.next(), args.next()) {
                (Some(password), None, _) => Ok(Command::Auth {
                    username: None,
                    password,
                }),
                (Some(username), Some(password), None) => Ok(Command::Auth {
                    username: Some(username),
                    password,
                }),
                _ => Err(CommandError::Syntax),
            }
        }
        "select" => Ok(Command::Select(integer(&one(name, args)?)?)),
        _ => Ok(Command::Quit),
    }
}

/// `HELLO [protover [AUTH username password] [SETNAME clientname]]`, checked in Redis's order:
/// the version first, then the options.
fn parse_hello(args: Vec<Vec<u8>>) -> Result<Command, CommandError> {
    let mut args = args.into_iter();
    let protocol = match args.next() {
        None => None,
        Some(version) => match parse_integer(&version) {
            None => return Err(CommandError::ProtocolVersionNotInteger),
            Some(2) => Some(2),
            Some(3) => Some(3),
            Some(_) => return Err(CommandError::UnsupportedProtocol),
        },
    };
    let (mut auth, mut client_name) = (None, None);
    let rest: Vec<Vec<u8>> = args.collect();
    let mut i = 0;
    while i < rest.len() {
        let option = &rest[i];
        let more = rest.len() - i - 1;
        if option.eq_ignore_ascii_case(b"auth") && more >= 2 {
            auth = Some((rest[i + 1].clone(), rest[i + 2].clone()));
            i += 3;
        } else if option.eq_ignore_ascii_case(b"setname") && more >= 1 {
            client_name = Some(client_name_of(rest[i + 1].clone())?);
            i += 2;
        } else {
            return Err(CommandError::HelloOption(
                String::from_utf8_lossy(option).into_owned(),
            ));
        }
    }
    Ok(Command::Hello {
        protocol,
        auth,
        client_name,
    })
}

/// Checks a client name as Redis does: printable ASCII without spaces (`!` to `~`), or empty.
fn client_name_of(name: Vec<u8>) -> Result<Vec<u8>, CommandError> {
    if name.iter().all(|b| (b'!'..=b'~').contains(b)) {
        Ok(name)
    } else {
        Err(CommandError::InvalidClientName)
    }
}

/// GET, SET, DEL, EXISTS, INCR, DECR, INCRBY, DECRBY, MGET, MSET, TYPE.
fn parse_string(name: &'static str, args: Vec<Vec<u8>>) -> Result<Command, CommandError> {
    match name {
        "get" => Ok(Command::Get(one(name, args)?)),
        "type" => Ok(Command::Type(one(name, args)?)),
        "set" => parse_set(args),
        "del" | "exists" | "mget" => {
            arity(name, &args, 1, usize::MAX)?;
            Ok(match name {
                "del" => Command::Del(args),
                "exists" => Command::Exists(args),
                _ => Command::MGet(args),
            })
        }
        "incr" => Ok(Command::IncrBy {
            key: one(name, args)?,
            delta: 1,
        }),
        "decr" => Ok(Command::IncrBy {
            key: one(name, args)?,
            delta: -1,
        }),
        "incrby" => {
            let (key, delta) = two(name, args)?;
            Ok(Command::IncrBy {
                key,
                delta: integer(&delta)?,
            })
        }
        "decrby" => {
            let (key, delta) = two(name, args)?;
            let delta = integer(&delta)?
                .checked_neg()
                .ok_or(CommandError::DecrementOverflow)?;
            Ok(Command::IncrBy { key, delta })
        }
        _ => {
            if args.is_empty() || !args.len().is_multiple_of(2) {
                return Err(CommandError::WrongArity(name));
            }
            Ok(Command::MSet(pairs(args)))
        }
    }
}

/// `SET key value [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL]`.
///
/// Like Redis, a repeated option is fine and conflicting ones are a syntax error; the expiry value
/// is checked only once the whole syntax is valid.
fn parse_set(args: Vec<Vec<u8>>) -> Result<Command, CommandError> {
    arity("set", &args, 2, usize::MAX)?;
    let mut args = args.into_iter();
    let (Some(key), Some(value)) = (args.next(), args.next()) else {
        return Err(CommandError::WrongArity("set"));
    };
    let options: Vec<Vec<u8>> = args.collect();
    let (mut condition, mut get, mut keep_ttl) = (SetCondition::Always, false, false);
    let mut expiry: Option<(&'static str, &[u8])> = None;
    let mut i = 0;
    while i < options.len() {
        let option = options[i].to_ascii_uppercase();
        match option.as_slice() {
            b"NX" if condition != SetCondition::IfPresent => condition = SetCondition::IfAbsent,
            b"XX" if condition != SetCondition::IfAbsent => condition = SetCondition::IfPresent,
            b"GET" => get = true,
            b"KEEPTTL" if expiry.is_none() => keep_ttl = true,
            b"EX" | b"PX" | b"EXAT" | b"PXAT" if !keep_ttl && i + 1 < options.len() => {
                let unit = match option.as_slice() {
                    b"EX" => "EX",
                    b"PX" => "PX",
                    b"EXAT" => "EXAT",
                    _ => "PXAT",
                };
                if expiry.is_some_and(|(other, _)| other != unit) {
                    return Err(CommandError::Syntax);
                }
                expiry = Some((unit, &options[i + 1]));
                i += 1;
            }
            _ => return Err(CommandError::Syntax),
        }
        i += 1;
    }
    if let Some((_, time)) = expiry {
        if integer(time)? <= 0 {
            return Err(CommandError::InvalidExpireTime);
        }
        return Err(CommandError::ExpiryUnsupported);
    }
    Ok(Command::Set {
        key,
        value,
        condition,
        get,
    })
}

/// SADD, SREM, SMEMBERS, SISMEMBER, SCARD.
fn parse_set_family(name: &'static str, args: Vec<Vec<u8>>) -> Result<Command, CommandError> {
    match name {
        "sadd" => {
            let (key, members) = head_and_tail(name, args, 2)?;
            Ok(Command::SAdd { key, members })
        }
        "srem" => {
            let (key, members) = head_and_tail(name, args, 2)?;
            Ok(Command::SRem { key, members })
        }
        "smembers" => Ok(Command::SMembers(one(name, args)?)),
        "sismember" => {
            let (key, member) = two(name, args)?;
            Ok(Command::SIsMember { key, member })
        }
        _ => Ok(Command::SCard(one(name, args)?)),
    }
}

/// HSET, HGET, HDEL, HGETALL.
fn parse_hash(name: &'static str, args: Vec<Vec<u8>>) -> Result<Command, CommandError> {
    match name {
        "hset" => {
            let (key, fields) = head_and_tail(name, args, 3)?;
            if !fields.len().is_multiple_of(2) {
                return Err(CommandError::WrongArity(name));
            }
            Ok(Command::HSet {
                key,
                pairs: pairs(fields),
            })
        }
        "hget" => {
            let (key, field) = two(name, args)?;
            Ok(Command::HGet { key, field })
        }
        "hdel" => {
            let (key, fields) = head_and_tail(name, args, 2)?;
            Ok(Command::HDel { key, fields })
        }
        _ => Ok(Command::HGetAll(one(name, args)?)),
    }
}

/// DBSIZE, INFO, COMMAND, CLIENT, CONFIG, CONCUR.
fn parse_server(name: &'static str, args: Vec<Vec<u8>>) -> Result<Command, CommandError> {
    match name {
        "dbsize" => {
            arity(name, &args, 0, 0)?;
            Ok(Command::DbSize)
        }
        "info" => {
            let sections: Vec<String> = args
                .iter()
                .map(|s| String::from_utf8_lossy(s).to_ascii_lowercase())
                .collect();
            Ok(Command::Info(
                (!sections.is_empty()).then(|| sections.join(" ")),
            ))
        }
        "command" => parse_command_command(args),
        "client" => parse_client(args),
        "config" => parse_config(args),
        _ => parse_concur(args),
    }
}

/// `COMMAND [COUNT|DOCS|INFO|LIST|GETKEYS|GETKEYSANDFLAGS|HELP ...]`.
fn parse_command_command(mut args: Vec<Vec<u8>>) -> Result<Command, CommandError> {
    const SUBCOMMANDS: [&str; 7] = [
        "count",
        "docs",
        "info",
        "list",
        "getkeys",
        "getkeysandflags",
        "help",
    ];
    if let Some(subcommand) = args.first_mut() {
        let lower = subcommand.to_ascii_lowercase();
        if !SUBCOMMANDS.iter().any(|known| known.as_bytes() == lower) {
            return Err(unknown_subcommand("COMMAND", subcommand));
        }
        *subcommand = lower;
    }
    Ok(Command::Command(args))
}

/// The unknown-subcommand error for `command`.
fn unknown_subcommand(command: &'static str, subcommand: &[u8]) -> CommandError {
    CommandError::UnknownSubcommand {
        command,
        subcommand: String::from_utf8_lossy(subcommand).into_owned(),
    }
}

/// `CLIENT SETNAME|GETNAME|ID|SETINFO|...`.
fn parse_client(args: Vec<Vec<u8>>) -> Result<Command, CommandError> {
    /// Subcommands Redis has that concur passes on by name.
    const OTHERS: [&str; 14] = [
        "list",
        "info",
        "kill",
        "pause",
        "unpause",
        "reply",
        "tracking",
        "trackinginfo",
        "getredir",
        "caching",
        "no-evict",
        "no-touch",
        "unblock",
        "help",
    ];
    let (subcommand, rest) = head_and_tail("client", args, 1)?;
    match subcommand.to_ascii_lowercase().as_slice() {
        b"setname" => Ok(Command::ClientSetName(client_name_of(one(
            "client|setname",
            rest,
        )?)?)),
        b"getname" => arity("client|getname", &rest, 0, 0).map(|()| Command::ClientGetName),
        b"id" => arity("client|id", &rest, 0, 0).map(|()| Command::ClientId),
        b"setinfo" => {
            let (attribute, _value) = two("client|setinfo", rest)?;
            if attribute.eq_ignore_ascii_case(b"lib-name")
                || attribute.eq_ignore_ascii_case(b"lib-ver")
            {
                Ok(Command::ClientSetInfo)
            } else {
                Err(CommandError::UnrecognizedOption(
                    String::from_utf8_lossy(&attribute).into_owned(),
                ))
            }
        }
        lower => match OTHERS.iter().find(|known| known.as_bytes() == lower) {
            Some(known) => Ok(Command::ClientOther((*known).to_owned())),
            None => Err(unknown_subcommand("CLIENT", &subcommand)),
        },
    }
}

/// `CONFIG GET pattern`; other CONFIG subcommands are refused.
fn parse_config(args: Vec<Vec<u8>>) -> Result<Command, CommandError> {
    let (subcommand, rest) = head_and_tail("config", args, 1)?;
    match subcommand.to_ascii_lowercase().as_slice() {
        b"get" => Ok(Command::ConfigGet(one("config|get", rest)?)),
        b"set" => Err(CommandError::Unsupported("CONFIG SET")),
        b"resetstat" => Err(CommandError::Unsupported("CONFIG RESETSTAT")),
        b"rewrite" => Err(CommandError::Unsupported("CONFIG REWRITE")),
        _ => Err(unknown_subcommand("CONFIG", &subcommand)),
    }
}

/// `CONCUR MODE key`.
fn parse_concur(args: Vec<Vec<u8>>) -> Result<Command, CommandError> {
    let (subcommand, rest) = head_and_tail("concur", args, 1)?;
    if subcommand.eq_ignore_ascii_case(b"mode") {
        Ok(Command::ConcurMode(one("concur|mode", rest)?))
    } else {
        Err(unknown_subcommand("CONCUR", &subcommand))
    }
}

impl Command {
    /// The command's Redis name in lower case (`INCR`, `DECR` and `DECRBY` are all `incrby`;
    /// `CLIENT ...` is `client`).
    pub fn name(&self) -> &'static str {
        match self {
            Command::Ping(_) => "ping",
            Command::Echo(_) => "echo",
            Command::Hello { .. } => "hello",
            Command::Auth { .. } => "auth",
            Command::Select(_) => "select",
            Command::Quit => "quit",
            Command::Get(_) => "get",
            Command::Set { .. } => "set",
            Command::Del(_) => "del",
            Command::Exists(_) => "exists",
            Command::IncrBy { .. } => "incrby",
            Command::MGet(_) => "mget",
            Command::MSet(_) => "mset",
            Command::SAdd { .. } => "sadd",
            Command::SRem { .. } => "srem",
            Command::SMembers(_) => "smembers",
            Command::SIsMember { .. } => "sismember",
            Command::SCard(_) => "scard",
            Command::HSet { .. } => "hset",
            Command::HGet { .. } => "hget",
            Command::HDel { .. } => "hdel",
            Command::HGetAll(_) => "hgetall",
            Command::Type(_) => "type",
            Command::DbSize => "dbsize",
            Command::Info(_) => "info",
            Command::Command(_) => "command",
            Command::ClientSetName(_)
            | Command::ClientSetInfo
            | Command::ClientGetName
            | Command::ClientId
            | Command::ClientOther(_) => "client",
            Command::ConcurMode(_) => "concur",
            Command::ConfigGet(_) => "config",
        }
    }

    /// Whether the command changes data (and so, for strong keys, goes through the log).
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Command::Set { .. }
                | Command::Del(_)
                | Command::IncrBy { .. }
                | Command::MSet(_)
                | Command::SAdd { .. }
                | Command::SRem { .. }
                | Command::HSet { .. }
                | Command::HDel { .. }
        )
    }

    /// The keys the command reads or writes, in argument order (empty for commands on no key;
    /// `CONCUR MODE` reads no data, so it names none).
    pub fn keys(&self) -> Vec<&[u8]> {
        match self {
            Command::Get(key)
            | Command::Set { key, .. }
            | Command::IncrBy { key, .. }
            | Command::SAdd { key, .. }
            | Command::SRem { key, .. }
            | Command::SMembers(key)
            | Command::SIsMember { key, .. }
            | Command::SCard(key)
            | Command::HSet { key, .. }
            | Command::HGet { key, .. }
            | Command::HDel { key, .. }
            | Command::HGetAll(key)
            | Command::Type(key) => vec![key.as_slice()],
            Command::Del(keys) | Command::Exists(keys) | Command::MGet(keys) => {
                keys.iter().map(Vec::as_slice).collect()
            }
            Command::MSet(pairs) => pairs.iter().map(|(key, _)| key.as_slice()).collect(),
            _ => Vec::new(),
        }
    }
}
