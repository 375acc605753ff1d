//! The available keyspace: `ap:` keys as CRDTs, synced between nodes by anti-entropy.
