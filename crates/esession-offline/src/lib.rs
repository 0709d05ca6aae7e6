//! # esession-offline
//!
//! XEP-0187 offline encrypted sessions:
//!
//! * [`publish`]: Alice, going offline, builds her options form (the 3-message request minus
//!   `accept`/`init_pubkey`/`resp_pubkey`, plus `expires`, `dhkeys` and `match_resource`), signs
//!   its content with every identity key (`signs`), and keeps N_A, every x and the expiry;
//! * [`pep`]: the XEP-0060/0163 IQs to create and configure the nodes, publish, withdraw and
//!   fetch the options;
//! * [`send`]: Bob verifies the options (a trusted signature, expiry, support) and starts the
//!   session in one stanza, as a 3-message responder with `resp_pubkey` = `key`;
//! * [`away`]: the steps put together: [`away::go_offline`], [`away::come_back`] (withdraw,
//!   then every queued stanza in order) and Bob's [`away::Outbox`] (one session per contact,
//!   ended when the contact comes online);
//! * [`receive`]: Alice, back online, checks each offline start in the order of I27 (expiry,
//!   nonce, group, replay, options, d, K, M_B, trust, signature), records d and N_B in the
//!   [`replay`] store, and decrypts. Every failure is silent: nothing is sent back.
//!
//! Like every protocol crate of the workspace it does no I/O and reads no clock: the caller
//! sends the stanzas, passes `now`, and supplies randomness.
//!
//! ```
//! use chrono::{Duration, TimeZone, Utc};
//! use esession_crypto::{CryptoProvider, PrivateKey, Profile, testing::TestRng};
//! use esession_forms::names::{Compress, Logging, StanzaType};
//! use esession_negotiate::{Config, MemoryTrust, RngEntropy};
//! use esession_offline::replay::MemoryReplay;
//! use esession_offline::{Audience, pep, publish, receive, send};
//! use minidom::Element;
//!
//! let mut rng = TestRng::new(7); // use a CSPRNG such as getrandom's in real code
//! let alice_key = PrivateKey::generate_rsa(&mut rng, 2048)?;
//! let bob_key = PrivateKey::generate_rsa(&mut rng, 2048)?;
//! let (alice_public, bob_public) = (alice_key.public_key(), bob_key.public_key());
//! let now = Utc.with_ymd_and_hms(2026, 1, 1, 8, 0, 0).unwrap();
//!
//! // Alice goes offline: sign and publish her options, keep the secrets (sealed, in practice).
//! let plan = publish::Plan {
//!     profile: Profile::Xep,
//!     provider: CryptoProvider::default(),
//!     logging: vec![Logging::May],
//!     compress: vec![Compress::None],
//!     stanzas: vec![StanzaType::Message],
//!     rekey_freq: 1,
//!     keys: vec![alice_key],
//!     lifetime: Duration::days(1),
//!     match_resource: None,
//! };
//! let (options, secrets) =
//!     publish::prepare(&plan, Audience::Subscribers, now, &mut RngEntropy(&mut rng))?;
//! let _iq = pep::publish(Audience::Subscribers, "pub1", options.clone());
//!
//! // Bob fetches them, checks them against the key he trusts for Alice, and starts.
//! let mut bob_trust = MemoryTrust::default();
//! let (alice, bob) = (esession_negotiate::BareJid::new("alice@example.org")?, esession_negotiate::BareJid::new("bob@example.com")?);
//! bob_trust.trust(&alice, alice_public);
//! let later = now + Duration::hours(2);
//! let verified = send::verify(&options, &alice, &bob_trust, later, Profile::Xep)?;
//! let body = Element::builder("body", "jabber:client").append("see you").build();
//! let content = Element::builder("message", "jabber:client").append(body).build();
//! let (mut stanza, _bob_session) = send::start(
//!     verified,
//!     &Config::with_identity(bob_key),
//!     "thread-1",
//!     Some(content),
//!     false,
//!     later,
//!     &mut RngEntropy(&mut rng),
//! )?;
//!
//! // The server stamps the sender; Alice returns and accepts it once.
//! stanza.set_attr(minidom::rxml::Namespace::NONE, esession_forms::xml::attr_name("from")?,
//!     "bob@example.com/laptop".to_owned());
//! let mut alice_trust = MemoryTrust::default();
//! alice_trust.trust(&bob, bob_public);
//! let mut seen = MemoryReplay::default();
//! let back = now + Duration::hours(5);
//! let (_alice_session, clear) =
//!     receive::accept(&secrets, &stanza, back, Profile::Xep, &alice_trust, &mut seen)?;
//! let clear = clear.expect("content").stanza;
//! assert_eq!(clear.get_child("body", "jabber:client").map(Element::text).as_deref(), Some("see you"));
//! // The same start again is a replay, dropped silently.
//! assert!(receive::accept(&secrets, &stanza, back, Profile::Xep, &alice_trust, &mut seen).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! IDs in the documentation such as `A11` (a resolution of an ambiguity of the specifications),
//! `I27` (an interpretation) or `X116-4.5.1-03` (a normative sentence) are defined in the
//! repository's `docs/resolutions.md` and `docs/conformance.md`.

// The crates of this crate's signatures (`minidom::Element`, the durable replay store's
// `redb::Database`), re-exported so that users name the same versions.
pub use minidom;
#[cfg(feature = "durable")]
pub use redb;

pub mod away;
pub mod pep;
pub mod publish;
pub mod receive;
pub mod replay;
pub mod send;

use core::fmt;

/// The PEP node of the options for presence subscribers.
pub const SUBSCRIBERS_NODE: &str = "http://www.xmpp.org/extensions/xep-0187.html#ns";
/// The PEP node of the options for everyone.
pub const EVERYONE_NODE: &str = esession_forms::esession::ESESSION_NS;

/// Who may fetch a set of options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Audience {
    /// Presence subscribers (access model `presence`); secrets destroyed once used.
    Subscribers,
    /// Everyone (access model `open`); every d is remembered until the options change.
    Everyone,
}

impl Audience {
    /// The PEP node.
    #[must_use]
    pub fn node(self) -> &'static str {
        match self {
            Audience::Subscribers => SUBSCRIBERS_NODE,
            Audience::Everyone => EVERYONE_NODE,
        }
    }

    /// The access model.
    #[must_use]
    pub fn access_model(self) -> &'static str {
        match self {
            Audience::Subscribers => "presence",
            Audience::Everyone => "open",
        }
    }
}

/// Why an offline session was not started or not accepted (the vector format's check names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Check {
    /// No signature verifies with a key trusted for the JID.
    OptionsSignature,
    /// The options expired.
    OptionsExpired,
    /// A field has no supported option.
    OptionsUnsupported,
    /// The start answers no nonce we published.
    UnknownNonce,
    /// The start picks a group we did not publish.
    UnknownGroup,
    /// d or N_B was already seen.
    Replay,
    /// The chosen options are not among ours.
    Options,
    /// d out of range.
    DRange,
    /// M_B does not verify.
    MB,
    /// The key is not trusted.
    KeyTrust,
    /// The signature does not verify.
    Signature,
    /// The identity does not parse.
    IdentityFormat,
    /// The form does not parse.
    Form,
    /// The encrypted content failed.
    Content,
    /// An encrypted stanza belongs to no accepted offline session.
    NoSession,
}

impl Check {
    /// The name used by the vector format.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Check::OptionsSignature => "options-signature",
            Check::OptionsExpired => "options-expired",
            Check::OptionsUnsupported => "options-unsupported",
            Check::UnknownNonce => "unknown-nonce",
            Check::UnknownGroup => "unknown-group",
            Check::Replay => "replay",
            Check::Options => "options",
            Check::DRange => "d-range",
            Check::MB => "M_B",
            Check::KeyTrust => "key-trust",
            Check::Signature => "signature",
            Check::IdentityFormat => "identity-format",
            Check::Form => "form",
            Check::Content => "xep0200-mac",
            Check::NoSession => "no-session",
        }
    }

    pub(crate) fn from_negotiate(c: esession_negotiate::Check) -> Self {
        use esession_negotiate::Check as N;
        match c {
            N::MB | N::MA => Check::MB,
            N::KeyTrust | N::KeyUnknown => Check::KeyTrust,
            N::Signature | N::MacA | N::MacB => Check::Signature,
            N::IdentityFormat => Check::IdentityFormat,
            N::DRange => Check::DRange,
            N::Form => Check::Form,
            _ => Check::Options,
        }
    }
}

/// Errors of this crate.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A check failed: the offline session is refused (silently, on the wire).
    Refused(Check),
    /// Our own configuration cannot publish options (no group, no key).
    Config(&'static str),
    /// A store could not record.
    Store(esession_negotiate::StoreError),
    /// A primitive failed.
    Crypto(esession_crypto::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Refused(c) => write!(f, "offline session refused: {}", c.as_str()),
            Error::Config(w) => write!(f, "configuration: {w}"),
            Error::Store(e) => write!(f, "{e}"),
            Error::Crypto(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {
    /// The wrapped error of [`Error::Store`] and [`Error::Crypto`].
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Store(e) => Some(e),
            Error::Crypto(e) => Some(e),
            Error::Refused(_) | Error::Config(_) => None,
        }
    }
}

impl From<esession_crypto::Error> for Error {
    fn from(e: esession_crypto::Error) -> Self {
        Error::Crypto(e)
    }
}

impl From<esession_negotiate::StoreError> for Error {
    fn from(e: esession_negotiate::StoreError) -> Self {
        Error::Store(e)
    }
}

/// Result alias.
pub type Result<T> = core::result::Result<T, Error>;

/// Formats a time in the canonical XEP-0082 form we send, `YYYY-MM-DDThh:mm:ssZ` (UTC, whole
/// seconds: fractions are dropped).
#[must_use]
pub fn xep0082(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Parses any XEP-0082 DateTime, `CCYY-MM-DDThh:mm:ss[.sss]TZD`: fractional seconds of any
/// length, `Z` or a `+hh:mm`/`-hh:mm` offset (turned into UTC). `None` for anything else:
/// a date alone, a missing zone, a lowercase `t`/`z` or a space (which RFC 3339 allows and
/// XEP-0082 does not), out-of-range fields, more than
/// [`esession_forms::esession::MAX_XEP0082_LEN`] characters.
#[must_use]
pub fn parse_xep0082(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    if !esession_forms::esession::is_xep0082_datetime(s) {
        return None;
    }
    chrono::DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&chrono::Utc))
}

/// Sets the values of field `var` of a form (adding the field, typed `hidden`, if missing).
pub(crate) fn set_values(x: &mut minidom::Element, var: &str, values: &[String]) {
    use minidom::Element;
    let ns = x.ns();
    let existing = x.children_mut().find(|f| f.name() == "field" && f.attr("var") == Some(var));
    let mut field = Element::bare("field", ns.clone());
    match existing {
        Some(f) => {
            for ((ans, n), v) in f.attrs().iter() {
                field.attrs_mut().insert(ans.clone(), n.clone(), v.clone());
            }
            for c in f.children().filter(|c| c.name() != "value") {
                field.append_child(c.clone());
            }
            for v in values {
                field.append_child(Element::builder("value", ns.clone()).append(v.as_str()).build());
            }
            *f = field;
        }
        None => {
            for (name, value) in [("type", "hidden"), ("var", var)] {
                if let Ok(n) = esession_forms::xml::attr_name(name) {
                    field.set_attr(minidom::rxml::Namespace::NONE, n, value.to_owned());
                }
            }
            for v in values {
                field.append_child(Element::builder("value", ns.clone()).append(v.as_str()).build());
            }
            x.append_child(field);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Check, Error, parse_xep0082, xep0082};
    use chrono::{TimeZone, Utc};
    use esession_negotiate::{StoreError, StoreErrorKind};
    use std::error::Error as _;

    #[test]
    fn wrapping_variants_have_their_cause_as_source() {
        let crypto = Error::from(esession_crypto::Error::Rng);
        let source = crypto.source().and_then(|s| s.downcast_ref::<esession_crypto::Error>());
        assert_eq!(source, Some(&esession_crypto::Error::Rng));

        let io = std::io::Error::other("disk full");
        let store = Error::from(StoreError::new(StoreErrorKind::Io, "cannot write").with_source(io));
        let first = store.source();
        assert_eq!(
            first.and_then(|s| s.downcast_ref::<StoreError>()).map(StoreError::kind),
            Some(StoreErrorKind::Io)
        );
        let inner = first.and_then(|s| s.source()).and_then(|s| s.downcast_ref::<std::io::Error>());
        assert_eq!(inner.map(ToString::to_string).as_deref(), Some("disk full"));

        assert!(Error::Refused(Check::Replay).source().is_none());
        assert!(Error::Config("x").source().is_none());
    }

    /// XEP-0082 §3.2 (DateTime profile) and its examples: every form is read, the canonical one
    /// is written.
    #[test]
    fn xep0082_every_datetime_form_is_accepted_and_the_canonical_one_sent() {
        let t = Utc.with_ymd_and_hms(1969, 7, 21, 2, 56, 15).unwrap();
        for s in [
            "1969-07-21T02:56:15Z",
            "1969-07-20T21:56:15-05:00",
            "1969-07-21T04:56:15+02:00",
            "1969-07-21T02:56:15+00:00",
            "1969-07-21T02:56:15-00:00",
        ] {
            assert_eq!(parse_xep0082(s), Some(t), "{s}");
        }
        let frac = parse_xep0082("1969-07-21T02:56:15.123Z").unwrap();
        assert_eq!(frac.timestamp_subsec_millis(), 123);
        assert_eq!(parse_xep0082("1969-07-20T21:56:15.5-05:00").unwrap().timestamp(), t.timestamp());
        assert!(parse_xep0082("1969-07-21T02:56:15.123456789Z").is_some());
        // What we send: UTC, whole seconds, `Z`.
        assert_eq!(xep0082(frac), "1969-07-21T02:56:15Z");
        assert_eq!(xep0082(parse_xep0082("1969-07-20T21:56:15-05:00").unwrap()), "1969-07-21T02:56:15Z");
    }

    #[test]
    fn xep0082_what_is_not_a_datetime_is_refused() {
        for s in [
            "",
            "1969-07-21",           // a Date, not a DateTime
            "02:56:15Z",            // a Time
            "1969-07-21T02:56:15",  // no zone
            "1969-07-21t02:56:15Z", // RFC 3339 allows lowercase, XEP-0082 does not
            "1969-07-21 02:56:15Z", // nor a space
            "1969-07-21T02:56:15z",
            "1969-07-21T02:56Z",                           // no seconds
            "1969-07-21T02:56:15.Z",                       // empty fraction
            "1969-07-21T02:56:15+0200",                    // offset without colon
            "1969-07-21T02:56:15+02",                      // offset without minutes
            "1969-13-21T02:56:15Z",                        // month 13
            "1969-07-21T25:56:15Z",                        // hour 25
            "1969-07-21T02:56:15+24:00",                   // offset out of range
            "69-07-21T02:56:15Z",                          // two-digit year
            "1969-07-21T02:56:15Z ",                       // trailing space
            "1969-07-21T02:56:15.0000000000000000000000Z", // beyond the length bound
        ] {
            assert_eq!(parse_xep0082(s), None, "{s:?}");
        }
    }
}
