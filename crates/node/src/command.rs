//! Redis commands: from a request's arguments to a typed command, with Redis-style errors.
