//! What a party asks its caller to do or tells it.

use esession_crypto::{PublicKey, Sas, SecretBytes};
use esession_forms::names::{Disclosure, Logging, Security};
use minidom::Element;

/// An output of a party, drained with `poll_output()`. `Debug` shows no content.
#[non_exhaustive]
pub enum Output {
    /// Send this stanza to the peer.
    Send(Element),
    /// The short authentication string to compare out of band (4-message negotiations).
    SasReady(Sas),
    /// The session is established.
    Established(Box<Established>),
    /// The negotiation was refused or failed; everything learned was discarded.
    Rejected(crate::Error),
    /// Something the user must be told at once (§7.4, §7.6, §4.7.2).
    Alert(Alert),
    /// Encrypted content that came in the same stanza as the last negotiation message,
    /// decrypted after the negotiation verified (XEP-0116 §4.6.4, §4.7.4).
    Received {
        /// The stanza with its decrypted content.
        content: Element,
        /// Children that came in clear beside the negotiation form and `<c/>`, dropped (see
        /// [`crate::Received::Stanza`]).
        unprotected: Vec<String>,
    },
    /// The peer accepted a plain stanza session instead of an ESession (XEP-0116 §4.4).
    StanzaSession {
        /// The `security` the peer chose (`c2s` or `none`).
        security: Security,
    },
}

impl core::fmt::Debug for Output {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Output::Send(e) => f.debug_tuple("Send").field(&e.name()).finish(),
            Output::SasReady(s) => f.debug_tuple("SasReady").field(s).finish(),
            Output::Established(e) => f.debug_tuple("Established").field(e).finish(),
            Output::Rejected(e) => f.debug_tuple("Rejected").field(e).finish(),
            Output::Alert(a) => f.debug_tuple("Alert").field(a).finish(),
            Output::Received { content, unprotected } => f
                .debug_struct("Received")
                .field("children", &content.children().count())
                .field("unprotected", unprotected)
                .finish(),
            Output::StanzaSession { security } => {
                f.debug_struct("StanzaSession").field("security", security).finish()
            }
        }
    }
}

/// Alerts for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Alert {
    /// The negotiated `disclosure` is not `never` (§7.6).
    Disclosure(Disclosure),
    /// A JID for which a key is stored presented another key, or none (§7.4).
    KeyChanged {
        /// The JID.
        jid: String,
    },
    /// A key already associated with other JIDs is presented by this one (§7.4).
    KeyUnderOtherJid {
        /// The presenting JID.
        jid: String,
        /// The JIDs the key was seen with before.
        known_as: Vec<String>,
    },
    /// The SAS with this peer has not been confirmed yet: remind the user (§4.7.2).
    SasNotConfirmed {
        /// The peer.
        jid: String,
    },
    /// No retained secret was shared with the peer: confirm the SAS now (§4.7.2).
    NoRetainedSecret {
        /// The peer.
        jid: String,
    },
    /// We hold retained secrets for this peer but the negotiation used none of them: the peer
    /// lost its state, or someone in the middle is negotiating with us (§7.3).
    RetainedSecretMismatch {
        /// The peer.
        jid: String,
    },
}

/// An established session and what the negotiation proved.
pub struct Established {
    /// The stanza encryption state (XEP-0200).
    pub session: esession_stanza::Session,
    /// The peer's full JID.
    pub peer: String,
    /// The `<thread/>` of the session.
    pub thread: String,
    /// The SAS (4-message).
    pub sas: Option<Sas>,
    /// The key the peer proved (none for `none` identities).
    pub peer_key: Option<PublicKey>,
    /// Whether a retained secret from a previous session entered the keys.
    pub retained_secret_used: bool,
    /// The negotiated `logging` (with `mustnot`, nothing of the session may be stored).
    pub logging: Logging,
    /// The negotiated `disclosure`.
    pub disclosure: Disclosure,
    /// The final K the session keys came from (4-message: HASH(K | SRS | OSS)); for
    /// known-answer checks only.
    pub k: SecretBytes,
    /// Whether we sent the terminate form.
    pub(crate) terminating: bool,
}

impl Established {
    /// Wraps a session a layer above built itself (an XEP-0187 offline session).
    #[allow(clippy::too_many_arguments)]
    #[must_use]
    pub fn new(
        session: esession_stanza::Session,
        peer: String,
        thread: String,
        peer_key: Option<PublicKey>,
        logging: Logging,
        disclosure: Disclosure,
        k: SecretBytes,
    ) -> Self {
        Self {
            session,
            peer,
            thread,
            sas: None,
            peer_key,
            retained_secret_used: false,
            logging,
            disclosure,
            k,
            terminating: false,
        }
    }
}

impl core::fmt::Debug for Established {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Established")
            .field("peer", &self.peer)
            .field("thread", &self.thread)
            .field("sas", &self.sas)
            .field("retained_secret_used", &self.retained_secret_used)
            .finish_non_exhaustive()
    }
}
