//! Bob's response, Alice's accept and Bob's identity (XEP-0116 §4.5-§4.6, Example 12).

#[allow(clippy::wildcard_imports)]
use super::*;

/// Bob's answer (XEP-0116 §4.5.2, Examples 8 and 9; the XEP-0187 offline start, Example 7), a
/// `submit`: one chosen value per option field, his nonce and d, Alice's nonce and C_A; in a
/// 3-message negotiation (and offline) also his identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// `accept` (absent from an XEP-0187 offline start, whose options had none, A1).
    pub accept: Option<bool>,
    /// `logging`.
    pub logging: Logging,
    /// `disclosure`.
    pub disclosure: Disclosure,
    /// `security`.
    pub security: Security,
    /// `modp`.
    pub modp: ModpGroup,
    /// `crypt_algs`.
    pub crypt_alg: CryptAlg,
    /// `hash_algs`.
    pub hash_alg: HashAlg,
    /// `sign_algs` (absent when both identities are `none`).
    pub sign_alg: Option<SignAlg>,
    /// `compress`.
    pub compress: Compress,
    /// `stanzas`: every accepted type.
    pub stanzas: Vec<StanzaType>,
    /// `init_pubkey` (absent in an offline start, A1).
    pub init_pubkey: Option<PubkeyMethod>,
    /// `resp_pubkey` (absent in an offline start, A1).
    pub resp_pubkey: Option<PubkeyMethod>,
    /// `ver`.
    pub ver: Version,
    /// `rekey_freq`.
    pub rekey_freq: u32,
    /// `my_nonce`: N_B.
    pub my_nonce: Vec<u8>,
    /// `sas_algs` (4-message).
    pub sas_alg: Option<SasAlg>,
    /// `dhkeys`: d.
    pub d: Vec<u8>,
    /// `nonce`: N_A echoed.
    pub nonce: Vec<u8>,
    /// `counter`: C_A.
    pub counter: u128,
    /// `terminate` (offline object encryption, I4: part of form_B).
    pub terminate: bool,
    /// `identity`: ID_B (3-message and offline).
    pub identity: Option<Vec<u8>>,
    /// `mac`: M_B (3-message and offline).
    pub mac: Option<Vec<u8>>,
    /// Answers to the request's other fields (XEP-0155 §4.2: `language`, `xhtml-im`...), each a
    /// `var` with its value; written after `security`, so form_B (and its MAC) covers them. On
    /// receipt: every field outside the ESession set, as received.
    pub other: Vec<Field>,
}

impl Response {
    /// The element this form travels in (A8): `<init/>` for an XEP-0187 offline start (an answer
    /// with an identity and no `accept`), `<feature/>` otherwise.
    #[must_use]
    pub fn wrapper(&self) -> Wrapper {
        if self.accept.is_none() && self.identity.is_some() { Wrapper::Init } else { Wrapper::Feature }
    }

    /// Whether this response gives a value to the request's field `var` (XEP-0155 §4.2: every
    /// field the request marked required must be answered). `dhhashes` is answered by `dhkeys`
    /// (d, §4.5.2) and `otr` by `logging` (A2).
    #[must_use]
    pub fn answers(&self, var: &str) -> bool {
        match var {
            "FORM_TYPE" | "logging" | "otr" | "disclosure" | "security" | "modp" | "crypt_algs"
            | "hash_algs" | "compress" | "stanzas" | "ver" | "rekey_freq" | "my_nonce" | "dhhashes"
            | "dhkeys" => true,
            "accept" => self.accept.is_some(),
            "sign_algs" => self.sign_alg.is_some(),
            "init_pubkey" => self.init_pubkey.is_some(),
            "resp_pubkey" => self.resp_pubkey.is_some(),
            "sas_algs" => self.sas_alg.is_some(),
            other => answers_var(&self.other, other),
        }
    }

    /// Parses an answer.
    ///
    /// # Errors
    /// Missing or malformed fields.
    pub fn parse(form: &DataForm) -> Result<Self> {
        if !matches!(form.type_, FormType::Submit | FormType::Result) {
            return Err(Error::WrongDataFormType);
        }
        let r = Reader::new(form)?;
        let counter = mpi::decode_u128(&r.b64("counter")?)
            .map_err(|_| Error::BadValue { var: "counter".into(), reason: "more than 128 bits" })?;
        let stanzas_field = r.req("stanzas")?;
        let stanzas = stanzas_field.values.iter().filter_map(|v| v.parse().ok()).collect::<Vec<StanzaType>>();
        if stanzas.is_empty() {
            return Err(Error::ValueCount { var: "stanzas".into() });
        }
        let identity = r.opt_b64("identity")?;
        let mac = r.opt_b64("mac")?;
        if identity.is_some() != mac.is_some() {
            return Err(Error::MissingField(if identity.is_some() { "mac" } else { "identity" }));
        }
        Ok(Self {
            accept: match r.get("accept") {
                Some(_) => Some(r.boolean("accept")?),
                None => None,
            },
            logging: r.logging_choice()?,
            disclosure: r.choice("disclosure")?,
            security: r.choice("security")?,
            modp: r
                .one("modp")?
                .parse()
                .map_err(|_| Error::BadValue { var: "modp".into(), reason: "not a group number" })?,
            crypt_alg: r.choice("crypt_algs")?,
            hash_alg: r.choice("hash_algs")?,
            sign_alg: r.opt_choice("sign_algs")?,
            compress: r.choice("compress")?,
            stanzas,
            init_pubkey: r.opt_choice("init_pubkey")?,
            resp_pubkey: r.opt_choice("resp_pubkey")?,
            ver: r.choice("ver")?,
            rekey_freq: r.rekey_freq()?,
            my_nonce: r.nonce("my_nonce")?,
            sas_alg: r.opt_choice("sas_algs")?,
            d: r.b64("dhkeys")?,
            nonce: r.nonce("nonce")?,
            counter,
            terminate: r.opt_boolean("terminate")?,
            identity,
            mac,
            other: others(form, &RESPONSE_VARS),
        })
    }

    /// Serializes in the layout of Examples 8/9 (I4): fields carry only `var`.
    #[must_use]
    pub fn to_form(&self, profile: Profile) -> DataForm {
        let mut w = Writer::new(profile, FormType::Submit);
        w.form.fields[0].type_ = None;
        if profile == Profile::Gajim {
            w.form.fields[0].type_ = Some(FieldType::TextSingle);
        }
        if let Some(a) = self.accept {
            w.value("accept", None, if a { "1" } else { "0" });
        }
        w.value("logging", None, self.logging.as_str());
        w.value("disclosure", None, self.disclosure.as_str());
        w.value("security", None, self.security.as_str());
        // X155-4.2-04: the answers to the request's other fields, inside form_B.
        w.form.fields.extend(self.other.iter().cloned());
        w.value("modp", None, self.modp.to_string());
        w.value("crypt_algs", None, self.crypt_alg.as_str());
        w.value("hash_algs", None, self.hash_alg.as_str());
        if let Some(s) = &self.sign_alg {
            w.value("sign_algs", None, s.as_str());
        }
        w.value("compress", None, self.compress.as_str());
        w.values("stanzas", None, strs(&self.stanzas));
        if let Some(p) = &self.init_pubkey {
            w.value("init_pubkey", None, p.as_str());
        }
        if let Some(p) = &self.resp_pubkey {
            w.value("resp_pubkey", None, p.as_str());
        }
        w.value("ver", None, self.ver.as_str());
        w.value("rekey_freq", None, self.rekey_freq.to_string());
        // X116-4.5.2-04: N_B and d in `my_nonce` and `dhkeys` (never `dhhashes`).
        w.b64("my_nonce", None, &self.my_nonce);
        if let Some(s) = &self.sas_alg {
            w.value("sas_algs", None, s.as_str());
        }
        w.b64("dhkeys", None, &self.d);
        // X116-4.5.2-06: `nonce` (N_A) and `counter` (C_A) appended, as Examples 8 and 9.
        w.b64("nonce", None, &self.nonce);
        w.b64("counter", None, &mpi::encode_u128(self.counter));
        if self.terminate {
            w.value("terminate", None, "1");
        }
        if let (Some(id), Some(mac)) = (&self.identity, &self.mac) {
            w.b64("identity", None, id);
            w.b64("mac", None, mac);
        }
        w.finish()
    }
}

/// Alice's accept (XEP-0116 §4.6.4, Examples 10 and 11), a `result`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accept {
    /// `accept`.
    pub accept: bool,
    /// `nonce`: N_B echoed.
    pub nonce: Vec<u8>,
    /// `dhkeys`: e (4-message only).
    pub e: Option<Vec<u8>>,
    /// `rshashes` (4-message): real ones and decoys.
    pub rshashes: Vec<Vec<u8>>,
    /// `terminate`: object encryption, the session ends with this stanza.
    pub terminate: bool,
    /// `identity`: ID_A.
    pub identity: Vec<u8>,
    /// `mac`: M_A.
    pub mac: Vec<u8>,
}

impl Accept {
    /// The element this form travels in (A8).
    #[must_use]
    pub fn wrapper(&self) -> Wrapper {
        Wrapper::Feature
    }

    /// Parses an accept.
    ///
    /// # Errors
    /// Missing or malformed fields.
    pub fn parse(form: &DataForm) -> Result<Self> {
        if !matches!(form.type_, FormType::Result | FormType::Submit) {
            return Err(Error::WrongDataFormType);
        }
        let r = Reader::new(form)?;
        let e = r.opt_b64("dhkeys")?;
        let rshashes = match r.get("rshashes") {
            Some(f) => f.values.iter().map(|v| decode(v, "rshashes")).collect::<Result<Vec<_>>>()?,
            None => Vec::new(),
        };
        Ok(Self {
            accept: r.boolean("accept")?,
            nonce: r.nonce("nonce")?,
            e,
            rshashes,
            terminate: r.opt_boolean("terminate")?,
            identity: r.b64("identity")?,
            mac: r.b64("mac")?,
        })
    }

    /// Serializes in the layout of Examples 10/11; `hidden_types` puts `type='hidden'` on
    /// `dhkeys` and `rshashes` exactly as Example 11 prints them (I5).
    #[must_use]
    pub fn to_form(&self, profile: Profile, hidden_types: bool) -> DataForm {
        let mut w = Writer::new(profile, FormType::Result);
        w.form.fields[0].type_ = if profile == Profile::Gajim { Some(FieldType::TextSingle) } else { None };
        let hidden = hidden_types.then_some(FieldType::Hidden);
        w.value("accept", None, if self.accept { "1" } else { "0" });
        w.b64("nonce", None, &self.nonce);
        if let Some(e) = &self.e {
            w.b64("dhkeys", hidden, e);
        }
        // rshashes is written whenever it has values, with or without dhkeys (a fuzzer found a
        // form with rshashes and no dhkeys that did not survive a round trip).
        if !self.rshashes.is_empty() {
            w.values("rshashes", hidden, self.rshashes.iter().map(|h| mpi::b64_encode(h)));
        }
        if self.terminate {
            w.value("terminate", None, "1");
        }
        w.b64("identity", None, &self.identity);
        w.b64("mac", None, &self.mac);
        w.finish()
    }
}

/// Bob's identity, the fourth message of a 4-message negotiation (Example 12), a `result` in
/// `<init/>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BobIdentity {
    /// `nonce`: N_A echoed.
    pub nonce: Vec<u8>,
    /// `srshash`.
    pub srshash: Vec<u8>,
    /// `identity`: ID_B.
    pub identity: Vec<u8>,
    /// `mac`: M_B.
    pub mac: Vec<u8>,
}

impl BobIdentity {
    /// The element this form travels in (A8).
    #[must_use]
    pub fn wrapper(&self) -> Wrapper {
        Wrapper::Init
    }

    /// Parses the form.
    ///
    /// # Errors
    /// Missing or malformed fields.
    pub fn parse(form: &DataForm) -> Result<Self> {
        let r = Reader::new(form)?;
        Ok(Self {
            nonce: r.nonce("nonce")?,
            srshash: r.b64("srshash")?,
            identity: r.b64("identity")?,
            mac: r.b64("mac")?,
        })
    }

    /// Serializes as Example 12.
    #[must_use]
    pub fn to_form(&self, profile: Profile) -> DataForm {
        let mut w = Writer::new(profile, FormType::Result);
        w.form.fields[0].type_ = if profile == Profile::Gajim { Some(FieldType::TextSingle) } else { None };
        w.b64("nonce", None, &self.nonce);
        w.b64("srshash", None, &self.srshash);
        w.b64("identity", None, &self.identity);
        w.b64("mac", None, &self.mac);
        w.finish()
    }
}
