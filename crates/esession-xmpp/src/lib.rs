//! XMPP Encrypted Sessions over a real XMPP connection.
//!
//! This is the only esession crate that does I/O. [`Client`] logs in to a server (tokio-xmpp),
//! advertises the feature, tracks contacts' presence, negotiates online sessions (XEP-0116) with
//! available contacts and offline sessions (XEP-0187) with unavailable ones, routes every
//! negotiation and `<c/>` stanza by contact and thread, and encrypts every one-to-one stanza it
//! sends: a stanza that cannot be protected is refused ([`Error::NotProtected`]) unless the
//! caller explicitly sends it in clear ([`Client::send_clear`]). [`Engine`] is its sans-IO core.
//! [`Account`] keeps all stores in one redb file under a data directory, secrets sealed with a
//! passphrase-derived (argon2id) or given key.
//!
//! ```no_run
//! # async fn run() -> Result<(), esession_xmpp::Error> {
//! use esession_xmpp::{Account, Client, Delivery, Options, Sealing};
//! let account = Account::open(std::path::Path::new("/tmp/alice"), Sealing::KeyFile)?;
//! let opts = Options::new("alice@localhost", "secret", "127.0.0.1:5222");
//! let mut alice = Client::connect(opts, account).await?;
//! match alice.send_text("bob@localhost", "hello").await? {
//!     Delivery::Online { sas } => println!("sent in a session, SAS {sas:?}"),
//!     Delivery::Offline => println!("Bob is away: sent in an offline session"),
//! }
//! let event = alice.next_event().await?;
//! println!("{event:?}");
//! # Ok(()) }
//! ```

//!
//! The engine alone, two parties relayed in memory (the relay stamps `from`, as a server does):
//!
//! ```
//! use esession_negotiate::{Config, MemoryRetained, MemoryTrust, Mode};
//! use esession_offline::replay::MemoryReplay;
//! use esession_stanza::EncryptOptions;
//! use esession_xmpp::{Engine, EngineStores, Event};
//!
//! let stores = || EngineStores {
//!     trust: Box::new(MemoryTrust::default()),
//!     retained: Box::new(MemoryRetained::default()),
//!     replay: Box::new(MemoryReplay::default()),
//! };
//! let (alice, bob) = ("alice@example.org/pda", "bob@example.com/laptop");
//! let (mut a, mut b) = (Engine::new(Config::default(), stores()), Engine::new(Config::default(), stores()));
//! let from = |mut s: minidom::Element, jid: &str| {
//!     s.set_attr(minidom::rxml::Namespace::NONE, minidom::rxml::NcName::try_from("from").unwrap(), jid.to_owned());
//!     s
//! };
//! let now = chrono::Utc::now();
//! let (mut to_bob, mut events) = (a.start(bob, Mode::Four)?.send, Vec::new());
//! while !to_bob.is_empty() {
//!     let mut to_alice = Vec::new();
//!     for s in to_bob.drain(..) {
//!         let step = b.handle(now, &from(s, alice));
//!         to_alice.extend(step.send);
//!         events.extend(step.events);
//!     }
//!     for s in to_alice {
//!         let step = a.handle(now, &from(s, bob));
//!         to_bob.extend(step.send);
//!         events.extend(step.events);
//!     }
//! }
//! assert!(a.has_session(bob) && b.has_session(alice));
//! assert!(events.iter().any(|e| matches!(e, Event::Negotiated { sas: Some(_), .. })));
//! let wire = a.chat(bob, "hello", EncryptOptions::default())?;
//! let step = b.handle(now, &from(wire, alice));
//! assert!(matches!(&step.events[..], [Event::Message { body: Some(t), .. }] if t == "hello"));
//! # Ok::<(), esession_xmpp::Error>(())
//! ```

pub mod account;
pub mod client;
pub mod engine;
pub mod pool;

pub use account::{Account, Sealing, fingerprint};
pub use client::{Client, Delivery, Options, Tls};
pub use engine::{Engine, EngineStores, Event, Step};
pub use pool::{KeyPool, PoolStats};

use std::fmt;

/// Errors, each one line a person can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The server cannot be reached.
    Unreachable(String),
    /// The server refused the login (wrong JID or password).
    Auth(String),
    /// The connection was lost.
    Disconnected(String),
    /// The server did not answer in time.
    Timeout(&'static str),
    /// A JID that does not parse.
    BadJid(String),
    /// The contact's client does not announce encrypted sessions.
    NoSupport(String),
    /// No session protects stanzas to this contact; nothing was sent.
    NotProtected(String),
    /// The contact is offline and has no offline options we can use.
    NoOfflineOptions(String),
    /// An offline session could not be started (untrusted or expired options, …).
    Offline(String),
    /// The negotiation failed.
    Negotiation(String),
    /// The server answered a request with an error.
    Server(String),
    /// A protocol error.
    Protocol(String),
    /// The account's secrets do not open with this passphrase or key.
    WrongPassphrase,
    /// The store failed.
    Store(String),
    /// The configuration cannot do this.
    Config(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Unreachable(s) => write!(f, "cannot reach the server: {s}"),
            Error::Auth(s) => write!(f, "login refused (wrong JID or password?): {s}"),
            Error::Disconnected(s) => write!(f, "disconnected: {s}"),
            Error::Timeout(what) => write!(f, "no answer in time: {what}"),
            Error::BadJid(j) => write!(f, "not a valid JID: {j}"),
            Error::NoSupport(j) => write!(f, "{j} does not support encrypted sessions"),
            Error::NotProtected(j) => write!(f, "no encrypted session with {j}: nothing was sent"),
            Error::NoOfflineOptions(j) => {
                write!(f, "{j} is offline and has published no offline options we may use")
            }
            Error::Offline(s) => write!(f, "offline session: {s}"),
            Error::Negotiation(s) => write!(f, "negotiation failed: {s}"),
            Error::Server(s) => write!(f, "the server refused: {s}"),
            Error::Protocol(s) => write!(f, "{s}"),
            Error::WrongPassphrase => {
                f.write_str("the passphrase (or key) does not open this account's data")
            }
            Error::Store(s) => write!(f, "store: {s}"),
            Error::Config(s) => write!(f, "{s}"),
        }
    }
}

impl std::error::Error for Error {}
