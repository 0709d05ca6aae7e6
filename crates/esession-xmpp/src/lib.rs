//! XMPP Encrypted Sessions over a real XMPP connection.
//!
//! This is the only esession crate that does I/O. [`Client`] logs in to a server (tokio-xmpp),
//! advertises the feature, tracks contacts' presence, negotiates online sessions (XEP-0116) with
//! available contacts and offline sessions (XEP-0187) with unavailable ones, and encrypts every
//! one-to-one stanza it sends: a stanza that cannot be protected is refused
//! ([`Error::NotProtected`]) unless the caller explicitly sends it in clear
//! ([`Client::send_clear`]). [`Engine`] is its sans-IO core: it routes every negotiation and
//! `<c/>` stanza by contact and thread; `Client` is the I/O shell that carries stanzas to and
//! from it.
//! [`Account`] keeps all stores in one redb file under a data directory (`Account::open`,
//! feature `durable`, on by default), secrets sealed with a passphrase-derived (argon2id) or
//! given key, or in memory ([`Account::in_memory`], in every build: without `durable` the crate
//! has no redb).
//!
//! Transport: [`Tls::StartTls`] (feature `starttls`) is STARTTLS to a server given and, without
//! one, the JID's domain through DNS SRV as XEP-0368 says (direct TLS where the records offer
//! it); [`Tls::DirectTls`] is direct TLS to a `host:port` given.
//!
//! ```no_run
//! # async fn run() -> Result<(), esession_xmpp::Error> {
//! use esession_xmpp::{Account, Client, Delivery, Options, Sealing, parse_jid};
//! let account = Account::open(std::path::Path::new("/tmp/alice"), Sealing::KeyFile)?;
//! let opts = Options::new("alice@localhost", "secret", "127.0.0.1:5222");
//! let mut alice = Client::connect(opts, account).await?;
//! match alice.send_text(&parse_jid("bob@localhost")?, "hello").await? {
//!     Delivery::Online { sas } => println!("sent in a session, SAS {sas:?}"),
//!     Delivery::Offline => println!("Bob is away: sent in an offline session"),
//!     _ => {}
//! }
//! let event = alice.next_event().await?;
//! println!("{event:?}");
//! # Ok(()) }
//! ```
//!
//! [`Client::builder`] ([`ClientBuilder`]) takes the negotiation [`Config`] (algorithms,
//! `logging`, identities, other shared secret, Bob's policy), the engine's [`Limits`] and trust
//! on first use; `Client::connect` is the builder with [`Options`] and the profile's defaults.
//!
//! The engine alone, two parties relayed in memory by [`relay::Relay`] (which plays the
//! server), is shown in the [`relay`] module; the crate's examples `echo_bot` (a bot with
//! STARTTLS, key generation, trust on first use and its event loop) and `own_client` (an
//! application that owns its `tokio_xmpp::Client` and drives the [`Engine`]) are in
//! `examples/`.
//!
//! Logs: [`tracing`](https://docs.rs/tracing) spans and events (no subscriber is installed)
//! for the connection, each stanza, the negotiation steps and every failed check, with bare
//! JIDs, thread ids, kinds and conditions: never keys, secrets, the SAS or content.
//!
//! IDs in the documentation such as `A11` (a resolution of an ambiguity of the specifications),
//! `I27` (an interpretation) or `X116-4.5.1-03` (a normative sentence) are defined in the
//! repository's `docs/resolutions.md` and `docs/conformance.md`.

pub mod account;
pub mod builder;
pub mod client;
pub mod engine;
mod nodelay;
pub mod pool;
pub mod relay;
mod smfix;
#[cfg(any(feature = "starttls", test))]
mod srv;

#[cfg(feature = "durable")]
pub use account::Sealing;
pub use account::{Account, fingerprint};
pub use builder::ClientBuilder;
pub use client::{Client, Delivery, Options, Tls};
pub use engine::{Ended, Engine, EngineStores, Event, Failure, FirstUse, Limits, Route, Step};
pub use esession_crypto::{PrivateKey, Profile, PublicKey};
pub use esession_negotiate::{Alert, BareJid, Config, FullJid, Jid, Mode};
// The crates of the configuration's fields (algorithms, form option names, Bob's policy), so
// that an application names them in the versions this crate uses without depending on them.
pub use esession_crypto;
pub use esession_forms;
pub use esession_negotiate;
pub use minidom;
pub use pool::{KeyPool, PoolStats};

use std::fmt;

/// A cause from another crate (network, TLS, the stream).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Errors, each one line a person can act on; [`std::error::Error::source`] gives the cause.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The server cannot be reached (DNS, TCP, TLS, the stream).
    Unreachable {
        /// The server (or domain) tried.
        server: String,
        /// Why.
        source: Option<BoxError>,
    },
    /// The server refused the login (wrong JID or password).
    Auth(Option<BoxError>),
    /// The connection was lost.
    Disconnected(Option<BoxError>),
    /// The server did not answer in time.
    Timeout(&'static str),
    /// A JID that does not parse.
    BadJid {
        /// The text given.
        jid: String,
        /// Why it does not parse.
        source: Option<jid::Error>,
    },
    /// The contact's client does not announce encrypted sessions.
    NoSupport(Jid),
    /// The contact has no available resource we can see (offline, or we do not see its
    /// presence: no subscription).
    NotAvailable {
        /// The contact.
        peer: BareJid,
        /// Whether we are subscribed to its presence (if not, we could never see it online).
        subscribed: bool,
    },
    /// No session protects stanzas to this contact; nothing was sent.
    NotProtected(BareJid),
    /// The contact is offline and has no offline options we can use.
    NoOfflineOptions {
        /// The contact.
        peer: BareJid,
        /// The server's error condition when it refused the fetch.
        condition: Option<String>,
    },
    /// An offline session could not be started (untrusted or expired options, …).
    Offline(esession_offline::Error),
    /// The negotiation could not be made or failed.
    Negotiation(esession_negotiate::Error),
    /// A stanza could not be encrypted in its session.
    Session(esession_negotiate::Error),
    /// The server answered a request with an error.
    Server {
        /// What was asked.
        action: String,
        /// The error condition.
        condition: String,
    },
    /// A stanza that cannot be sent as it is.
    Protocol(String),
    /// The account's secrets do not open with this passphrase or key.
    WrongPassphrase,
    /// A store failed.
    Store(esession_negotiate::StoreError),
    /// A file of the account could not be used.
    Io {
        /// The file or directory.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The configuration cannot do this.
    Config(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cause = |f: &mut fmt::Formatter<'_>, s: &Option<BoxError>| match s {
            Some(e) => write!(f, ": {e}"),
            None => Ok(()),
        };
        match self {
            Error::Unreachable { server, source } => {
                write!(f, "cannot reach the server {server}")?;
                // rustls says what is wrong with the certificate (`BadSignature` for a
                // self-signed one), not what to do about it: said in words. Told by rustls's
                // error in the cause chain, never by the text.
                let trouble = source.as_deref().and_then(tls_trouble);
                match trouble {
                    Some(TlsTrouble::Certificate(words)) => write!(f, ": {words}")?,
                    _ => cause(f, source)?,
                }
                let cert_file = std::env::var_os("SSL_CERT_FILE");
                let certificate = matches!(trouble, Some(TlsTrouble::Certificate(_)));
                if certificate
                    && let Some(path) = cert_file.as_ref()
                    && !std::fs::read_to_string(path).is_ok_and(|t| t.contains("-----BEGIN CERTIFICATE-----"))
                {
                    write!(
                        f,
                        " (SSL_CERT_FILE={} cannot be read or holds no PEM certificate: it was not used)",
                        std::path::Path::new(path).display()
                    )?;
                } else if certificate {
                    write!(
                        f,
                        " (the certificate must name the JID's domain and chain to a root the system \
                         trusts. If you trust this server, e.g. your own with a certificate you made or \
                         one of your private CA, and checked that it is its certificate, give that \
                         certificate or the CA's in a PEM file in the environment: SSL_CERT_FILE=PATH \
                         esession ...)"
                    )?;
                } else if trouble == Some(TlsTrouble::NotTls) {
                    // Direct TLS to a port that speaks XML first.
                    write!(
                        f,
                        " (the server did not answer in TLS: this port may expect STARTTLS, not direct TLS)"
                    )?;
                }
                Ok(())
            }
            Error::Auth(s) => {
                // A server that offers no mechanism over plain TCP wants encryption first (SASL
                // PLAIN and SCRAM are offered only under TLS by Prosody's defaults).
                let no_mechanism =
                    s.as_ref().is_some_and(|e| e.to_string().contains("no matching SASL mechanism"));
                if no_mechanism {
                    write!(f, "login refused: the server offers no login this client can use here")?;
                    cause(f, s)?;
                    return write!(f, " (it may require encryption: use STARTTLS or direct TLS)");
                }
                write!(f, "login refused (wrong JID or password?)")?;
                cause(f, s)
            }
            Error::Disconnected(s) => {
                write!(f, "disconnected")?;
                cause(f, s)
            }
            Error::Timeout(what) => write!(f, "no answer in time: {what}"),
            Error::BadJid { jid, source } => match source {
                Some(e) => write!(f, "not a valid JID: {jid:?} ({e})"),
                None => write!(f, "not a valid JID here: {jid:?}"),
            },
            Error::NoSupport(j) => write!(f, "{j} does not support encrypted sessions"),
            Error::NotAvailable { peer, subscribed: true } => write!(f, "{peer} is offline"),
            Error::NotAvailable { peer, subscribed: false } => write!(
                f,
                "{peer} does not share its presence with you: ask for it with `esession contact add {peer}` and wait until it is approved"
            ),
            Error::NotProtected(j) => write!(f, "no encrypted session with {j}: nothing was sent"),
            Error::NoOfflineOptions { peer, condition } => {
                write!(f, "{peer} is offline and has published no offline options you may use")?;
                match condition {
                    Some(c) => write!(f, " (the server said {c})"),
                    None => Ok(()),
                }
            }
            Error::Offline(e) => write!(f, "offline session: {e}"),
            Error::Negotiation(e) => write!(f, "negotiation failed: {e}"),
            Error::Session(e) => write!(f, "cannot send in the session: {e}"),
            Error::Server { action, condition } => write!(f, "the server refused {action}: {condition}"),
            Error::Protocol(s) => write!(f, "{s}"),
            Error::WrongPassphrase => {
                f.write_str("the passphrase (or key) does not open this account's data")
            }
            Error::Store(e) => write!(f, "{e}"),
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::Config(s) => write!(f, "{s}"),
        }
    }
}

/// What a failed TLS connection says a person can fix (found only with the `starttls` feature,
/// which brings TLS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "starttls"), allow(dead_code))]
enum TlsTrouble {
    /// The server's certificate was refused (not for the domain, no trusted root...): why, in
    /// words.
    Certificate(&'static str),
    /// What came back is not TLS: a port that speaks XML first (STARTTLS), not direct TLS.
    NotTls,
}

/// The trouble rustls reported, found by type in `e`'s cause chain (tokio-rustls hands rustls's
/// error over inside an `io::Error`, whose `source()` skips it: `get_ref` reaches it), at
/// most 16 causes deep.
#[cfg(feature = "starttls")]
fn tls_trouble(e: &(dyn std::error::Error + Send + Sync + 'static)) -> Option<TlsTrouble> {
    use tokio_xmpp::rustls::{CertificateError as C, Error as Tls, InvalidMessage};
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    for _ in 0..16 {
        let e = cur?;
        if let Some(t) = e.downcast_ref::<Tls>() {
            return match t {
                Tls::InvalidCertificate(c) => Some(TlsTrouble::Certificate(match c {
                    // rustls reports a self-signed certificate as BadSignature (it is checked
                    // against itself as its own issuer) or UnknownIssuer.
                    C::BadSignature | C::UnknownIssuer => {
                        "the server's certificate is not trusted: it is self-signed, or signed by an \
                         authority this system does not trust"
                    }
                    C::NotValidForName | C::NotValidForNameContext { .. } => {
                        "the server's certificate is for another name than the JID's domain"
                    }
                    C::Expired | C::ExpiredContext { .. } => "the server's certificate has expired",
                    C::NotValidYet | C::NotValidYetContext { .. } => {
                        "the server's certificate is not valid yet (is this machine's clock right?)"
                    }
                    C::Revoked => "the server's certificate was revoked",
                    _ => "the server's certificate was refused",
                })),
                Tls::NoCertificatesPresented => {
                    Some(TlsTrouble::Certificate("the server presented no certificate"))
                }
                Tls::UnsupportedNameType => {
                    Some(TlsTrouble::Certificate("the server's name cannot be checked against a certificate"))
                }
                Tls::InvalidMessage(InvalidMessage::InvalidContentType) => Some(TlsTrouble::NotTls),
                _ => None,
            };
        }
        cur = match e.downcast_ref::<std::io::Error>().and_then(std::io::Error::get_ref) {
            Some(inner) => Some(inner),
            None => e.source(),
        };
    }
    None
}

/// Without TLS there is no TLS trouble.
#[cfg(not(feature = "starttls"))]
fn tls_trouble(_: &(dyn std::error::Error + Send + Sync + 'static)) -> Option<TlsTrouble> {
    None
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Unreachable { source: Some(e), .. }
            | Error::Auth(Some(e))
            | Error::Disconnected(Some(e)) => Some(e.as_ref()),
            Error::BadJid { source: Some(e), .. } => Some(e),
            Error::Offline(e) => Some(e),
            Error::Negotiation(e) | Error::Session(e) => Some(e),
            Error::Store(e) => Some(e),
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl Error {
    /// A JID that does not parse.
    pub(crate) fn bad_jid(jid: &str, source: jid::Error) -> Self {
        Error::BadJid { jid: jid.to_owned(), source: Some(source) }
    }
}

/// Parses a JID, normalized (nodeprep, nameprep, resourceprep): `Alice@LocalHost` is
/// `alice@localhost`.
///
/// # Errors
/// [`Error::BadJid`].
pub fn parse_jid(s: &str) -> Result<Jid, Error> {
    Jid::new(s.trim()).map_err(|e| Error::bad_jid(s, e))
}

/// Parses a bare JID (a full one is cut to its bare part), normalized.
///
/// # Errors
/// [`Error::BadJid`].
pub fn parse_bare(s: &str) -> Result<BareJid, Error> {
    parse_jid(s).map(|j| j.to_bare())
}

#[cfg(test)]
mod tests {
    use super::Error;

    /// A refused login says what to do: a wrong password, or (no mechanism offered in clear)
    /// encryption the server requires.
    #[test]
    fn a_refused_login_says_why() {
        let auth = |m: &str| Error::Auth(Some(Box::new(std::io::Error::other(m.to_owned())))).to_string();
        let clear = auth("no matching SASL mechanism available");
        assert!(clear.contains("may require encryption") && !clear.contains("password"), "{clear}");
        let wrong = auth("not-authorized");
        assert!(wrong.contains("wrong JID or password"), "{wrong}");
    }

    /// Issue 19: the certificate and direct-TLS hints come from rustls's error as tokio-xmpp
    /// hands it over (an `io::Error` around it, in `tokio_xmpp::Error::Io`), never from the
    /// text of an error that mentions a certificate or the variant's name.
    #[cfg(feature = "starttls")]
    #[test]
    fn tls_hints_come_from_the_rustls_error_not_its_text() {
        use tokio_xmpp::rustls::{CertificateError, Error as Tls, InvalidMessage};
        let unreachable = |source: crate::BoxError| {
            Error::Unreachable { server: "example.org".into(), source: Some(source) }.to_string()
        };
        let tls = |t: Tls| {
            unreachable(Box::new(tokio_xmpp::Error::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                t,
            ))))
        };
        let text = |m: &str| unreachable(Box::new(std::io::Error::other(m.to_owned())));
        let cert = tls(Tls::InvalidCertificate(CertificateError::UnknownIssuer));
        assert!(cert.contains("SSL_CERT_FILE"), "{cert}");
        // Issue 19: a self-signed certificate read "BadSignature"; it is said in words.
        let own = tls(Tls::InvalidCertificate(CertificateError::BadSignature));
        assert!(
            own.contains("is not trusted: it is self-signed") && own.contains("SSL_CERT_FILE=PATH"),
            "{own}"
        );
        assert!(!own.contains("BadSignature"), "{own}");
        let not_tls = tls(Tls::InvalidMessage(InvalidMessage::InvalidContentType));
        assert!(not_tls.contains("may expect STARTTLS"), "{not_tls}");
        let other = tls(Tls::DecryptError);
        assert!(!other.contains("SSL_CERT_FILE") && !other.contains("STARTTLS"), "{other}");
        for m in ["cannot load the certificate store", "InvalidContentType", "connection refused"] {
            let t = text(m);
            assert!(!t.contains("SSL_CERT_FILE") && !t.contains("STARTTLS"), "{t}");
        }
    }
}
