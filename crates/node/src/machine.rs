//! The replicated state machine every node runs under Raft: the strong keyspace and, beside it,
//! the event store ([`crate::history`]), both kept linearizably.
//!
//! Commands and queries travel through the Raft log as postcard-encoded [`MachineCommand`] /
//! [`MachineQuery`]; outputs come back as an encoded [`MachineOutput`]. Bytes that do not decode
//! produce an error output on every replica alike, so a bad command can never split replicas.

use serde::{Deserialize, Serialize};

use crate::history::{EventHistory, EventsCommand, EventsOutput, EventsQuery};
use crate::strong::{StrongCommand, StrongError, StrongOutput, StrongQuery, StrongStore};

/// A write replicated through the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum MachineCommand {
    /// A write to the strong keyspace.
    Strong(StrongCommand),
    /// A write to the event store.
    Events(EventsCommand),
}

/// A read answered from the state machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum MachineQuery {
    /// A read of the strong keyspace.
    Strong(StrongQuery),
    /// A read of the event store.
    Events(EventsQuery),
}

/// What a command or query produced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum MachineOutput {
    /// The strong keyspace's answer.
    Strong(StrongOutput),
    /// The event store's answer.
    Events(EventsOutput),
}

impl MachineCommand {
    /// Encodes for `raft::ClientOperation::Write`.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }
}

impl MachineQuery {
    /// Encodes for `raft::ClientOperation::Read`.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }
}

impl MachineOutput {
    /// Decodes a reply's output; bytes that do not decode become a strong error.
    pub fn decode(bytes: &[u8]) -> Self {
        postcard::from_bytes(bytes).unwrap_or_else(|error| {
            MachineOutput::Strong(StrongOutput::Error(StrongError::Undecodable(
                error.to_string(),
            )))
        })
    }

    fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }
}

/// The node's replicated state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeMachine {
    strong: StrongStore,
    events: EventHistory,
}

impl NodeMachine {
    /// The strong keyspace.
    pub fn strong(&self) -> &StrongStore {
        &self.strong
    }

    /// The event store.
    pub fn events(&self) -> &EventHistory {
        &self.events
    }
}

fn undecodable(error: postcard::Error) -> Vec<u8> {
    MachineOutput::Strong(StrongOutput::Error(StrongError::Undecodable(
        error.to_string(),
    )))
    .encode()
}

impl raft::StateMachine for NodeMachine {
    fn apply(&mut self, command: &[u8]) -> Vec<u8> {
        match postcard::from_bytes::<MachineCommand>(command) {
            Ok(MachineCommand::Strong(command)) => {
                MachineOutput::Strong(self.strong.execute(command)).encode()
            }
            Ok(MachineCommand::Events(command)) => {
                MachineOutput::Events(self.events.execute(command)).encode()
            }
            Err(error) => undecodable(error),
        }
    }

    fn query(&self, query: &[u8]) -> Vec<u8> {
        match postcard::from_bytes::<MachineQuery>(query) {
            Ok(MachineQuery::Strong(query)) => {
                MachineOutput::Strong(self.strong.query(&query)).encode()
            }
            Ok(MachineQuery::Events(query)) => {
                MachineOutput::Events(self.events.query(&query)).encode()
            }
            Err(error) => undecodable(error),
        }
    }

    fn snapshot(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    fn restore(&mut self, data: &[u8]) -> Result<(), raft::StateMachineError> {
        let restored = postcard::from_bytes::<NodeMachine>(data)
            .map_err(|error| raft::StateMachineError::Decode(error.to_string()))?;
        *self = restored;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use raft::StateMachine;

    use super::*;
    use crate::strong::SetCondition;

    #[test]
    fn commands_apply_and_snapshots_restore() {
        let mut machine = NodeMachine::default();
        let command = MachineCommand::Strong(StrongCommand::Set {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            condition: SetCondition::Always,
            get: false,
        });
        assert_eq!(
            MachineOutput::decode(&machine.apply(&command.encode())),
            MachineOutput::Strong(StrongOutput::Ok)
        );
        let query = MachineQuery::Strong(StrongQuery::Get(b"k".to_vec()));
        assert_eq!(
            MachineOutput::decode(&machine.query(&query.encode())),
            MachineOutput::Strong(StrongOutput::Bulk(b"v".to_vec()))
        );
        let snapshot = machine.snapshot();
        let mut restored = NodeMachine::default();
        restored.restore(&snapshot).unwrap();
        assert_eq!(restored, machine);
        assert!(restored.restore(&[0xff, 0xff, 0xff]).is_err());
        assert_eq!(
            restored, machine,
            "a bad snapshot leaves the state unchanged"
        );
    }

    #[test]
    fn undecodable_commands_fail_alike_everywhere() {
        let mut machine = NodeMachine::default();
        let output = MachineOutput::decode(&machine.apply(&[0xff, 0x01]));
        assert!(matches!(
            output,
            MachineOutput::Strong(StrongOutput::Error(StrongError::Undecodable(_)))
        ));
        assert_eq!(machine, NodeMachine::default());
    }
}
