//! An established ESession at the level of XEP-0116 §5: application stanzas, termination with
//! an encrypted terminate form and its encrypted acknowledgement, and nothing sent after either.

use crate::outputs::Established;
use esession_crypto::Profile;
use esession_forms::dataform::DataForm;
use esession_forms::esession::{Terminate, Wrapper};
use esession_stanza::EncryptOptions;
use minidom::Element;
use rand_core::CryptoRng;

/// Where the session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Stanzas flow both ways.
    Active,
    /// We sent the terminate form: we only receive, waiting for the acknowledgement.
    Terminating,
    /// Over; every key is gone.
    Closed,
}

/// What [`Established::receive`] found in a stanza. `Debug` shows no content.
#[non_exhaustive]
pub enum Received {
    /// A decrypted application stanza: exactly what the peer protected (see
    /// [`esession_stanza::Session::decrypt`]).
    Stanza {
        /// The stanza with its decrypted content.
        stanza: Element,
        /// Children that came in clear beside `<c/>`, outside what XEP-0200 §5 leaves in
        /// clear: not covered by the MAC, dropped, named here (empty normally). Report them
        /// apart from the stanza, never as part of it.
        unprotected: Vec<String>,
    },
    /// The peer terminated the session (§5). `ack` is the encrypted acknowledgement to send; the
    /// session is closed.
    Terminated {
        /// The acknowledgement to send (None when it was the peer's acknowledgement of ours, or
        /// an unauthenticated clear-text terminate).
        ack: Option<Element>,
        /// Whether the terminate was inside the encrypted, MAC-verified content (A14).
        verified: bool,
    },
}

impl core::fmt::Debug for Received {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Received::Stanza { stanza, unprotected } => f
                .debug_struct("Stanza")
                .field("name", &stanza.name())
                .field("children", &stanza.children().count())
                .field("unprotected", unprotected)
                .finish(),
            Received::Terminated { ack, verified } => {
                f.debug_struct("Terminated").field("ack", &ack.is_some()).field("verified", verified).finish()
            }
        }
    }
}

fn terminate_of(stanza: &Element) -> Option<Terminate> {
    stanza
        .children()
        .filter_map(|c| Wrapper::unwrap(c).ok())
        .find_map(|(_, x)| DataForm::parse(x).ok().and_then(|f| Terminate::parse(&f).ok()))
}

impl Established {
    /// The session's phase.
    #[must_use]
    pub fn phase(&self) -> Phase {
        if self.session.is_closed() {
            Phase::Closed
        } else if self.terminating {
            Phase::Terminating
        } else {
            Phase::Active
        }
    }

    /// Encrypts an application stanza for the peer.
    ///
    /// # Errors
    /// After we sent a terminate (only receiving is allowed) or when closed; as
    /// [`esession_stanza::Session::encrypt`].
    pub fn encrypt<R: CryptoRng + ?Sized>(
        &mut self,
        stanza: &Element,
        opts: EncryptOptions,
        rng: &mut R,
    ) -> crate::Result<Element> {
        if self.phase() != Phase::Active {
            return Err(crate::Error::ApiMisuse("the session is being terminated"));
        }
        Ok(self.session.encrypt(stanza, opts, rng)?)
    }

    fn form_stanza(&self, t: Terminate) -> Element {
        let profile: Profile = self.session.params().profile;
        let x = t.to_form(profile).to_element_with(profile == Profile::Gajim);
        let mut m = crate::wire::message(&self.peer, &self.thread, vec![Wrapper::Feature.wrap(x)]);
        // The terminate message has no type (I17); drop the attribute `message` may carry.
        m.attrs_mut().retain(|_, name, _| name.as_str() != "type");
        m
    }

    /// Terminates the session (§5): the encrypted terminate form, optionally publishing the old
    /// MAC keys that may be published. Afterwards we only receive, to verify the
    /// acknowledgement.
    ///
    /// # Errors
    /// When not active, or when encryption fails.
    pub fn terminate<R: CryptoRng + ?Sized>(
        &mut self,
        publish_old: bool,
        rng: &mut R,
    ) -> crate::Result<Element> {
        if self.phase() != Phase::Active {
            return Err(crate::Error::ApiMisuse("the session is not active"));
        }
        let m = self.form_stanza(Terminate::Request);
        let wire = self.session.encrypt(&m, EncryptOptions { rekey: false, publish_old }, rng)?;
        self.terminating = true;
        Ok(wire)
    }

    /// Receives a stanza of the session: decrypts it (any failure terminates the session, as
    /// XEP-0200 requires) and recognises a terminate or an acknowledgement inside it.
    ///
    /// # Errors
    /// The stanza layer's errors; [`esession_stanza::Error::NotEncrypted`] for clear stanzas
    /// other than a terminate.
    pub fn receive<R: CryptoRng + ?Sized>(
        &mut self,
        stanza: &Element,
        publish_old_in_ack: bool,
        rng: &mut R,
    ) -> crate::Result<Received> {
        if stanza.children().all(|c| c.name() != "c") {
            // A clear SSN terminate is accepted but it is not authenticated (A14).
            if terminate_of(stanza) == Some(Terminate::Request) {
                self.session.close();
                return Ok(Received::Terminated { ack: None, verified: false });
            }
            return Err(esession_stanza::Error::NotEncrypted.into());
        }
        let (clear, opened) = self.session.decrypt(stanza)?;
        match terminate_of(&clear) {
            Some(Terminate::Request) => {
                // §5: verify (done), acknowledge encrypted, destroy the keys.
                let ack = if self.terminating {
                    None
                } else {
                    let m = self.form_stanza(Terminate::Ack);
                    Some(self.session.encrypt(
                        &m,
                        EncryptOptions { rekey: false, publish_old: publish_old_in_ack },
                        rng,
                    )?)
                };
                self.session.close();
                Ok(Received::Terminated { ack, verified: true })
            }
            Some(Terminate::Ack) => {
                self.session.close();
                Ok(Received::Terminated { ack: None, verified: true })
            }
            None => Ok(Received::Stanza { stanza: clear, unprotected: opened.unprotected }),
        }
    }
}
