//! CQRS over the event store: user profiles.
//!
//! Command side: `UserCommandService` decides commands against the `User` aggregate rebuilt from
//! its stream and appends events with an exact expected version. Query side: `UserQueryService`
//! serves two projections — the current profile of every user and an audit log of who changed
//! what, correlated by request. The projections survive a restart (they resume from their saved
//! state) and a rebuild from zero reaches the same state.
//!
//! Run: `cargo run -p events --example user_profile`

use std::collections::BTreeMap;
use std::path::PathBuf;

use events::{
    Aggregate, AggregateError, AsOf, EventStore, Metadata, Projection, ProjectionRunner,
    RecordedEvent, Repository, StoreError, SubscriptionFilter, Uuid, decode_event,
};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
enum UserEvent {
    UserRegistered { email: String, name: String },
    EmailChanged { email: String },
    NameChanged { name: String },
    UserDeactivated { reason: String },
}

enum UserCommand {
    Register { email: String, name: String },
    ChangeEmail { email: String },
    ChangeName { name: String },
    Deactivate { reason: String },
}

#[derive(Debug, thiserror::Error)]
enum UserError {
    #[error("user already registered")]
    AlreadyRegistered,
    #[error("no such user")]
    NotRegistered,
    #[error("user is deactivated")]
    Deactivated,
    #[error("email {0:?} is not valid")]
    InvalidEmail(String),
    #[error("email {0:?} is taken")]
    EmailTaken(String),
}

/// The write model: only what decisions need.
#[derive(Default, Serialize, Deserialize)]
struct User {
    registered: bool,
    active: bool,
    email: String,
}

impl Aggregate for User {
    type Event = UserEvent;
    type Command = UserCommand;
    type Error = UserError;
    const CATEGORY: &'static str = "user";

    fn apply(&mut self, event: &UserEvent) {
        match event {
            UserEvent::UserRegistered { email, .. } => {
                (self.registered, self.active, self.email) = (true, true, email.clone());
            }
            UserEvent::EmailChanged { email } => self.email = email.clone(),
            UserEvent::NameChanged { .. } => {}
            UserEvent::UserDeactivated { .. } => self.active = false,
        }
    }

    fn decide(&self, command: &UserCommand) -> Result<Vec<UserEvent>, UserError> {
        let valid = |email: &str| {
            if email.contains('@') {
                Ok(())
            } else {
                Err(UserError::InvalidEmail(email.into()))
            }
        };
        if let UserCommand::Register { email, name } = command {
            if self.registered {
                return Err(UserError::AlreadyRegistered);
            }
            valid(email)?;
            return Ok(vec![UserEvent::UserRegistered {
                email: email.clone(),
                name: name.clone(),
            }]);
        }
        if !self.registered {
            return Err(UserError::NotRegistered);
        }
        if !self.active {
            return Err(UserError::Deactivated);
        }
        Ok(match command {
            UserCommand::Register { .. } => unreachable!("handled above"),
            UserCommand::ChangeEmail { email } if *email == self.email => vec![],
            UserCommand::ChangeEmail { email } => {
                valid(email)?;
                vec![UserEvent::EmailChanged {
                    email: email.clone(),
                }]
            }
            UserCommand::ChangeName { name } => vec![UserEvent::NameChanged { name: name.clone() }],
            UserCommand::Deactivate { reason } => vec![UserEvent::UserDeactivated {
                reason: reason.clone(),
            }],
        })
    }
}

/// Query model 1: the current profile of every user.
#[derive(Default, Serialize, Deserialize)]
struct UserProfiles {
    profiles: BTreeMap<String, Profile>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Profile {
    email: String,
    name: String,
    active: bool,
    changes: u64,
}

fn user_id(event: &RecordedEvent) -> String {
    event.stream.trim_start_matches("user-").to_owned()
}

impl Projection for UserProfiles {
    fn filter(&self) -> SubscriptionFilter {
        SubscriptionFilter::StreamPrefix("user-".into())
    }

    fn apply(&mut self, recorded: &RecordedEvent) {
        let Ok(event) = decode_event::<UserEvent>(recorded, &events::Upcasters::new()) else {
            return;
        };
        let id = user_id(recorded);
        if let UserEvent::UserRegistered { email, name } = &event {
            let profile = Profile {
                email: email.clone(),
                name: name.clone(),
                active: true,
                changes: 0,
            };
            self.profiles.insert(id.clone(), profile);
        }
        let Some(profile) = self.profiles.get_mut(&id) else {
            return;
        };
        profile.changes += 1;
        match event {
            UserEvent::UserRegistered { .. } => {}
            UserEvent::EmailChanged { email } => profile.email = email,
            UserEvent::NameChanged { name } => profile.name = name,
            UserEvent::UserDeactivated { .. } => profile.active = false,
        }
    }
}

/// Query model 2: an audit log of every change, with the request that caused it.
#[derive(Default, Serialize, Deserialize)]
struct AuditLog {
    entries: Vec<AuditEntry>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct AuditEntry {
    position: u64,
    user: String,
    change: String,
    request: Option<Uuid>,
    wall_ns: u64,
}

impl Projection for AuditLog {
    fn filter(&self) -> SubscriptionFilter {
        SubscriptionFilter::StreamPrefix("user-".into())
    }

    fn apply(&mut self, event: &RecordedEvent) {
        self.entries.push(AuditEntry {
            position: event.position,
            user: user_id(event),
            change: event.event.event_type.clone(),
            request: event.event.metadata.correlation_id,
            wall_ns: event.recorded_at.wall_ns,
        });
    }
}

/// The command side.
struct UserCommandService {
    users: Repository<User>,
}

impl UserCommandService {
    fn handle(
        &self,
        user: &str,
        command: UserCommand,
        request: Uuid,
    ) -> Result<(), AggregateError<UserError>> {
        // Each request is its own correlation; the command itself is the cause.
        self.users
            .execute(user, &command, Metadata::caused_by(request, Uuid::new_v4()))
            .map(|_| ())
    }

    fn register(
        &self,
        queries: &mut UserQueryService,
        user: &str,
        email: &str,
        name: &str,
    ) -> Result<(), AggregateError<UserError>> {
        // Uniqueness across users is a query-side check (eventually consistent, like most CQRS systems).
        queries.refresh()?;
        if queries.find_by_email(email).is_some() {
            return Err(AggregateError::Rejected(UserError::EmailTaken(
                email.into(),
            )));
        }
        self.handle(
            user,
            UserCommand::Register {
                email: email.into(),
                name: name.into(),
            },
            Uuid::new_v4(),
        )
    }
}

/// The query side.
struct UserQueryService {
    profiles: ProjectionRunner<UserProfiles>,
    audit: ProjectionRunner<AuditLog>,
}

impl UserQueryService {
    fn start(store: &EventStore) -> Result<Self, StoreError> {
        Ok(Self {
            profiles: ProjectionRunner::start(store, "user-profiles")?.checkpoint_every(2),
            audit: ProjectionRunner::start(store, "user-audit")?,
        })
    }

    fn refresh(&mut self) -> Result<u64, StoreError> {
        Ok(self.profiles.catch_up()? + self.audit.catch_up()?)
    }

    fn profile(&self, user: &str) -> Option<&Profile> {
        self.profiles.state().profiles.get(user)
    }

    fn find_by_email(&self, email: &str) -> Option<&str> {
        self.profiles
            .state()
            .profiles
            .iter()
            .find(|(_, profile)| profile.email == email)
            .map(|(id, _)| id.as_str())
    }

    fn audit_trail(&self, user: &str) -> Vec<&AuditEntry> {
        self.audit
            .state()
            .entries
            .iter()
            .filter(|entry| entry.user == user)
            .collect()
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let directory: PathBuf =
        std::env::temp_dir().join(format!("concur-events-user-profile-{}", std::process::id()));
    let store = EventStore::open(&directory)?;
    let commands = UserCommandService {
        users: Repository::new(&store).snapshot_every(3),
    };
    let mut queries = UserQueryService::start(&store)?;

    commands.register(&mut queries, "ada", "ada@example.org", "Ada")?;
    commands.register(&mut queries, "alan", "alan@example.org", "Alan")?;
    let rename = Uuid::new_v4();
    commands.handle(
        "ada",
        UserCommand::ChangeName {
            name: "Ada Lovelace".into(),
        },
        rename,
    )?;
    commands.handle(
        "ada",
        UserCommand::ChangeEmail {
            email: "ada@analytical.engine".into(),
        },
        rename,
    )?;
    let taken = commands.register(&mut queries, "impostor", "alan@example.org", "Not Alan");
    println!(
        "register with a taken email: {}",
        taken.map_or_else(|error| error.to_string(), |()| "accepted?!".into())
    );
    let invalid = commands.handle(
        "alan",
        UserCommand::ChangeEmail {
            email: "nowhere".into(),
        },
        Uuid::new_v4(),
    );
    println!(
        "invalid email change:        {}",
        invalid.map_or_else(|error| error.to_string(), |()| "accepted?!".into())
    );
    commands.handle(
        "alan",
        UserCommand::Deactivate {
            reason: "left".into(),
        },
        Uuid::new_v4(),
    )?;
    let late = commands.handle(
        "alan",
        UserCommand::ChangeName {
            name: "A. Turing".into(),
        },
        Uuid::new_v4(),
    );
    println!(
        "change a deactivated user:   {}",
        late.map_or_else(|error| error.to_string(), |()| "accepted?!".into())
    );

    queries.refresh()?;
    let ada = queries.profile("ada").ok_or("ada missing")?.clone();
    println!("\nprofile of ada:  {ada:?}");
    println!("profile of alan: {:?}", queries.profile("alan"));
    assert_eq!(
        (ada.name.as_str(), ada.email.as_str(), ada.changes),
        ("Ada Lovelace", "ada@analytical.engine", 3)
    );
    assert!(!queries.profile("alan").ok_or("alan missing")?.active);
    assert_eq!(queries.find_by_email("ada@analytical.engine"), Some("ada"));

    println!("\naudit trail of ada:");
    for entry in queries.audit_trail("ada") {
        println!(
            "  position {:>2}  {:<16} request {:?}",
            entry.position, entry.change, entry.request
        );
    }
    let trail = queries.audit_trail("ada");
    assert_eq!(trail.len(), 3);
    assert_eq!(
        trail[1].request,
        Some(rename),
        "both changes of one request share its correlation id"
    );
    assert_eq!(trail[1].request, trail[2].request);

    // Time travel: ada as she was when first registered.
    let first = Repository::<User>::new(&store).load_as_of("ada", Some(AsOf::Revision(0)))?;
    println!("\nada's email at revision 0: {}", first.state.email);
    assert_eq!(first.state.email, "ada@example.org");

    // Restart: the projections resume from their saved state and position.
    drop(queries);
    drop(commands);
    drop(store);
    let store = EventStore::open(&directory)?;
    let mut queries = UserQueryService::start(&store)?;
    let replayed = queries.refresh()?;
    println!(
        "after restart: {replayed} events re-applied, ada is {:?}",
        queries.profile("ada").map(|profile| &profile.name)
    );
    assert_eq!(replayed, 0);
    assert_eq!(queries.profile("ada"), Some(&ada));

    // Rebuild from zero: the same answer from the log alone.
    let mut rebuilt = ProjectionRunner::<UserProfiles>::rebuild(&store, "user-profiles");
    let applied = rebuilt.catch_up()?;
    println!("rebuilt user-profiles from zero: {applied} events applied");
    assert_eq!(rebuilt.state().profiles, queries.profiles.state().profiles);
    std::fs::remove_dir_all(&directory)?;
    Ok(())
}
