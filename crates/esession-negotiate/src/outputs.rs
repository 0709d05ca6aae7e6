//! What a party asks its caller to do or tells it.

use crate::established::Established;
use esession_crypto::Sas;
use esession_forms::names::{Disclosure, Security};
use jid::BareJid;
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
    #[non_exhaustive]
    Received {
        /// The stanza with its decrypted content.
        content: Element,
        /// Children that came in clear beside the negotiation form and `<c/>`, dropped (see
        /// [`crate::Received::Stanza`]).
        unprotected: Vec<String>,
        /// Children kept in clear besides `<thread/>`, not covered by the MAC (see
        /// [`crate::Received::Stanza`]).
        clear: Vec<String>,
    },
    /// A plain stanza session instead of an ESession (XEP-0116 §4.4) is open: for Alice once she
    /// sent her completion, for Bob once he received it (XEP-0155 §4.4).
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
            Output::Received { content, unprotected, clear } => f
                .debug_struct("Received")
                .field("children", &content.children().count())
                .field("unprotected", unprotected)
                .field("clear", clear)
                .finish(),
            Output::StanzaSession { security } => {
                f.debug_struct("StanzaSession").field("security", security).finish()
            }
        }
    }
}

/// Alerts for the user. [`Alert`]'s `Display` says in words what happened and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Alert {
    /// The negotiated `disclosure` is not `never` (§7.6).
    Disclosure(Disclosure),
    /// A JID for which a key is stored presented another key, or none (§7.4).
    KeyChanged {
        /// The JID.
        jid: BareJid,
    },
    /// A key already associated with other JIDs is presented by this one (§7.4).
    KeyUnderOtherJid {
        /// The presenting JID.
        jid: BareJid,
        /// The JIDs the key was seen with before.
        known_as: Vec<BareJid>,
    },
    /// The SAS with this peer has not been confirmed yet: remind the user (§4.7.2).
    SasNotConfirmed {
        /// The peer.
        jid: BareJid,
    },
    /// No retained secret was shared with the peer: confirm the SAS now (§4.7.2).
    NoRetainedSecret {
        /// The peer.
        jid: BareJid,
    },
    /// We hold retained secrets for this peer but the negotiation used none of them: the peer
    /// lost its state, or someone in the middle is negotiating with us (§7.3).
    RetainedSecretMismatch {
        /// The peer.
        jid: BareJid,
    },
}

impl Alert {
    /// A stable name of the alert's kind (`key-changed`, `no-retained-secret`...), for
    /// programs; [`Alert`]'s `Display` is for people.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Alert::Disclosure(_) => "disclosure",
            Alert::KeyChanged { .. } => "key-changed",
            Alert::KeyUnderOtherJid { .. } => "key-under-other-jid",
            Alert::SasNotConfirmed { .. } => "sas-not-confirmed",
            Alert::NoRetainedSecret { .. } => "no-retained-secret",
            Alert::RetainedSecretMismatch { .. } => "retained-secret-mismatch",
        }
    }
}

impl core::fmt::Display for Alert {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Alert::Disclosure(d) => write!(f, "the peer's client may disclose this session (disclosure {d})"),
            Alert::KeyChanged { jid } => write!(
                f,
                "{jid} identified with a key other than the one known for it: verify the new key before trusting it"
            ),
            Alert::KeyUnderOtherJid { jid, known_as } => {
                let others: Vec<&str> = known_as.iter().map(|j| j.as_str()).collect();
                write!(f, "{jid} identified with a key already known for {}", others.join(", "))
            }
            Alert::SasNotConfirmed { jid } => {
                write!(f, "the SAS with {jid} was never confirmed: compare it with {jid} out of band")
            }
            Alert::NoRetainedSecret { jid } => {
                write!(f, "no secret from an earlier session with {jid} was shared: compare the SAS now")
            }
            Alert::RetainedSecretMismatch { jid } => write!(
                f,
                "{jid} did not use the secret of your last session: its client lost its state, or someone is in the middle; compare the SAS"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Each alert has its stable kind for programs and words for people that name the peer.
    #[test]
    fn alerts_have_a_kind_and_words_naming_the_peer() {
        let jid = BareJid::new("bob@example.com").unwrap();
        let other = BareJid::new("carol@example.net").unwrap();
        let alerts = [
            (Alert::Disclosure(Disclosure::Enabled), "disclosure", "disclosure enabled"),
            (Alert::KeyChanged { jid: jid.clone() }, "key-changed", "a key other than the one known"),
            (
                Alert::KeyUnderOtherJid { jid: jid.clone(), known_as: vec![other] },
                "key-under-other-jid",
                "already known for carol@example.net",
            ),
            (Alert::SasNotConfirmed { jid: jid.clone() }, "sas-not-confirmed", "never confirmed"),
            (Alert::NoRetainedSecret { jid: jid.clone() }, "no-retained-secret", "compare the SAS now"),
            (Alert::RetainedSecretMismatch { jid }, "retained-secret-mismatch", "someone is in the middle"),
        ];
        for (alert, kind, words) in alerts {
            assert_eq!(alert.kind(), kind);
            let text = alert.to_string();
            assert!(text.contains(words), "{kind}: {text}");
            if kind != "disclosure" {
                assert!(
                    text.starts_with("bob@example.com") || text.contains("with bob@example.com"),
                    "{text}"
                );
            }
        }
    }

    /// `Debug` of an output names what it is, never its content.
    #[test]
    fn outputs_show_no_content() {
        let mut m = Element::bare("message", "jabber:client");
        m.append_child(Element::builder("body", "jabber:client").append("a secret text").build());
        let send = format!("{:?}", Output::Send(m.clone()));
        assert_eq!(send, "Send(\"message\")");
        let received = format!("{:?}", Output::Received { content: m, unprotected: vec![], clear: vec![] });
        assert_eq!(received, "Received { children: 1, unprotected: [], clear: [] }");
        let alert = format!("{:?}", Output::Alert(Alert::Disclosure(Disclosure::Enabled)));
        assert!(alert.starts_with("Alert(Disclosure("), "{alert}");
        let ssn = format!("{:?}", Output::StanzaSession { security: Security::C2s });
        assert!(ssn.starts_with("StanzaSession { security: "), "{ssn}");
    }
}
