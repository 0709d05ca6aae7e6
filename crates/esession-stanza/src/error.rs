//! Errors of the stanza layer, in the categories of STYLE.md, each mapped to what goes on the
//! wire.

use core::fmt;

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A MAC did not verify, a re-key value was out of range, or the decrypted content is not
    /// well-formed XML. The session is terminated (XEP-0200 §8 steps 3 and 6) and the peer may be
    /// sent `<not-acceptable/>`.
    Terminated(TerminationCause),
    /// The session was already terminated; nothing more can be sent or received.
    SessionClosed,
    /// The `<c/>` element is malformed (missing `<mac/>`, bad Base64, duplicates...). Treated
    /// like a MAC failure by sessions: it cannot be authenticated.
    Malformed(&'static str),
    /// The stanza type was not negotiated (`stanzas` field) and clear text was not allowed
    /// explicitly (XEP-0116 §4.1).
    NotNegotiated(String),
    /// A re-key was requested before `rekey_freq` stanzas were exchanged (XEP-0200 §9.1).
    RekeyTooSoon {
        /// Stanzas still to exchange before a re-key is allowed.
        remaining: u32,
    },
    /// The stanza has no `<c/>`: it was sent in clear (the session is not affected; the caller
    /// decides whether to show it, and must say it was not protected).
    NotEncrypted,
    /// The block budget since the last key exchange is spent and `rekey_freq` forbids a re-key:
    /// the session must be terminated (XEP-0200 §11.4).
    KeyExhausted,
    /// A re-key was requested while [`crate::session::MAX_STORED_SETS`] receive key sets are
    /// stored: the peer has not answered our earlier re-keys (XEP-0200 §9.2). No re-key is
    /// started until a stanza of the peer under a newer key lets the older sets go; a peer
    /// that stays silent is the application's to handle (terminate the session).
    RekeysUnanswered {
        /// How many receive key sets are stored.
        stored: usize,
    },
    /// A primitive failed (unknown algorithm, bad key length).
    Crypto(esession_crypto::Error),
    /// A kept receiving state ([`crate::Session::import_receiving`]) cannot be read back (of
    /// another version, truncated, malformed), or a session's state is not kept
    /// ([`crate::Session::export_receiving`]: a compression context).
    Snapshot(&'static str),
}

/// Why a session was terminated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TerminationCause {
    /// b_mac differed from a_mac, or the `<c/>` element could not be authenticated.
    Mac,
    /// The decrypted content is not well-formed XML.
    Xml,
    /// A `<key/>` value outside 1 < e < p - 1 (A18).
    RekeyRange,
    /// A `<new/>` value that selects no stored key set.
    New,
    /// Decompression failed.
    Compression,
}

impl fmt::Display for TerminationCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TerminationCause::Mac => "a stanza failed its MAC",
            TerminationCause::Xml => "the decrypted content is not well-formed XML",
            TerminationCause::RekeyRange => "a re-key value is out of range",
            TerminationCause::New => "a <new/> count selects no stored key set",
            TerminationCause::Compression => "the content did not decompress",
        })
    }
}

impl Error {
    /// The XMPP error condition to send back, if any (`not-acceptable` for terminations, the
    /// MAY of XEP-0200 §8).
    #[must_use]
    // X200-N22-01: a stanza error condition, never a stream error (the server is not
    // responsible for encrypted content).
    pub fn condition(&self) -> Option<&'static str> {
        match self {
            Error::Terminated(_) | Error::Malformed(_) => Some("not-acceptable"),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Terminated(c) => write!(f, "session terminated: {c}"),
            Error::SessionClosed => f.write_str("session closed"),
            Error::Malformed(w) => write!(f, "malformed <c/>: {w}"),
            Error::NotNegotiated(t) => write!(f, "stanza type {t} is not encrypted in this session"),
            Error::RekeyTooSoon { remaining } => write!(f, "re-key not allowed for {remaining} more stanzas"),
            Error::NotEncrypted => f.write_str("the stanza is not encrypted"),
            Error::KeyExhausted => f.write_str("the key must be renewed before more data is sent"),
            Error::RekeysUnanswered { stored } => {
                write!(f, "no re-key while {stored} key sets wait for the peer's answer")
            }
            Error::Crypto(e) => write!(f, "{e}"),
            Error::Snapshot(w) => write!(f, "kept session state: {w}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<esession_crypto::Error> for Error {
    fn from(e: esession_crypto::Error) -> Self {
        Error::Crypto(e)
    }
}

/// Result alias.
pub type Result<T> = core::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    /// Every error says what happened in words (no `Debug` names), with what it carries.
    #[test]
    fn errors_are_said_in_words() {
        let cases: [(Error, &str); 11] = [
            (Error::Terminated(TerminationCause::Mac), "session terminated: a stanza failed its MAC"),
            (
                Error::Terminated(TerminationCause::Xml),
                "session terminated: the decrypted content is not well-formed XML",
            ),
            (
                Error::Terminated(TerminationCause::RekeyRange),
                "session terminated: a re-key value is out of range",
            ),
            (
                Error::Terminated(TerminationCause::New),
                "session terminated: a <new/> count selects no stored key set",
            ),
            (
                Error::Terminated(TerminationCause::Compression),
                "session terminated: the content did not decompress",
            ),
            (Error::SessionClosed, "session closed"),
            (Error::Malformed("no <mac/>"), "malformed <c/>: no <mac/>"),
            (Error::NotNegotiated("iq".into()), "stanza type iq is not encrypted in this session"),
            (Error::RekeyTooSoon { remaining: 3 }, "re-key not allowed for 3 more stanzas"),
            (Error::RekeysUnanswered { stored: 4 }, "no re-key while 4 key sets wait for the peer's answer"),
            (Error::Snapshot("truncated"), "kept session state: truncated"),
        ];
        for (e, words) in cases {
            assert_eq!(e.to_string(), words);
        }
        assert_eq!(Error::NotEncrypted.to_string(), "the stanza is not encrypted");
        assert_eq!(Error::KeyExhausted.to_string(), "the key must be renewed before more data is sent");
        let crypto = esession_crypto::Error::InvalidKey;
        assert_eq!(Error::from(crypto.clone()).to_string(), crypto.to_string());
    }
}
