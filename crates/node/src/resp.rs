//! Redis serialization protocol (RESP2 and RESP3): request parsing and reply encoding.
