//! Alice's request (XEP-0116 §4.3) and the options it shares with XEP-0187 offline options.

#[allow(clippy::wildcard_imports)]
use super::*;

/// How Alice commits to her DH values in the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DhOffer {
    /// 4-message: `dhhashes`, He = SHA256(e) per offered group.
    Hashes(Vec<Vec<u8>>),
    /// 3-message: `dhkeys`, e per offered group.
    Keys(Vec<Vec<u8>>),
}

impl DhOffer {
    /// The values, one per offered group.
    #[must_use]
    pub fn values(&self) -> &[Vec<u8>] {
        match self {
            DhOffer::Hashes(v) | DhOffer::Keys(v) => v,
        }
    }
}

/// The options common to Alice's request and her XEP-0187 offline options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offers {
    /// `logging`, in preference order.
    pub logging: Vec<Logging>,
    /// `disclosure`.
    pub disclosure: Vec<Disclosure>,
    /// `security`.
    pub security: Vec<Security>,
    /// `modp`.
    pub modp: Vec<ModpGroup>,
    /// `crypt_algs`.
    pub crypt_algs: Vec<CryptAlg>,
    /// `hash_algs`.
    pub hash_algs: Vec<HashAlg>,
    /// `sign_algs`; empty when the field is absent (identities fixed to `none`, I3).
    pub sign_algs: Vec<SignAlg>,
    /// `compress`.
    pub compress: Vec<Compress>,
    /// `stanzas`.
    pub stanzas: Vec<StanzaType>,
    /// `ver`.
    pub ver: Vec<Version>,
    /// `rekey_freq`: the minimum stanzas between key exchanges (1 to 2^32 - 1).
    pub rekey_freq: u32,
}

impl Offers {
    pub(super) fn read(r: &Reader<'_>) -> Result<Self> {
        Ok(Self {
            logging: r.logging_offer()?,
            disclosure: r.offer("disclosure")?,
            security: r.offer("security")?,
            modp: {
                let f = r.req("modp")?;
                let raw: Vec<&str> = if f.options.is_empty() {
                    f.values.iter().map(String::as_str).collect()
                } else {
                    f.options.iter().map(|o| o.value.as_str()).collect()
                };
                if raw.is_empty() {
                    return Err(Error::BadValue { var: "modp".into(), reason: "no option offered" });
                }
                // A malformed number is still one offered group (so dhhashes stay aligned).
                raw.iter().map(|s| s.parse().unwrap_or(ModpGroup::Unknown(0))).collect()
            },
            crypt_algs: r.offer("crypt_algs")?,
            hash_algs: r.offer("hash_algs")?,
            sign_algs: match r.get("sign_algs") {
                Some(f) => r.offer_of(f, "sign_algs")?,
                None => Vec::new(),
            },
            compress: r.offer("compress")?,
            stanzas: r.offer("stanzas")?,
            ver: r.offer("ver")?,
            rekey_freq: r.rekey_freq()?,
        })
    }

    pub(super) fn write_head(&self, w: &mut Writer) {
        w.list("logging", FieldType::ListSingle, &self.logging, true);
        w.list("disclosure", FieldType::ListSingle, &self.disclosure, true);
        w.list("security", FieldType::ListSingle, &self.security, true);
        w.list("modp", FieldType::ListSingle, &self.modp, false);
        w.list("crypt_algs", FieldType::ListSingle, &self.crypt_algs, false);
        w.list("hash_algs", FieldType::ListSingle, &self.hash_algs, false);
        if !self.sign_algs.is_empty() {
            w.list("sign_algs", FieldType::ListSingle, &self.sign_algs, false);
        }
        w.list("compress", FieldType::ListSingle, &self.compress, false);
        w.list("stanzas", FieldType::ListMulti, &self.stanzas, false);
    }

    pub(super) fn write_tail(&self, w: &mut Writer) {
        w.list("ver", FieldType::ListSingle, &self.ver, false);
        w.value("rekey_freq", Some(FieldType::TextSingle), self.rekey_freq.to_string());
    }
}

/// Alice's ESession request (XEP-0116 §4.3, Examples 3 and 4), a `form`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `accept` (true: Alice wants a session).
    pub accept: bool,
    /// The options.
    pub offers: Offers,
    /// `init_pubkey`.
    pub init_pubkey: Vec<PubkeyMethod>,
    /// `resp_pubkey`.
    pub resp_pubkey: Vec<PubkeyMethod>,
    /// `my_nonce`: N_A.
    pub my_nonce: Vec<u8>,
    /// `sas_algs` (4-message only; empty for 3-message, I2).
    pub sas_algs: Vec<SasAlg>,
    /// `dhhashes` (4-message) or `dhkeys` (3-message), one per `modp` option (A4).
    pub dh: DhOffer,
    /// Every other field, as received and in order: XEP-0155 fields (`language`, `xhtml-im`,
    /// `chatstates`...) and unknown ones, with their `<required/>` flag and default values, for
    /// the responder to answer or refuse (XEP-0155 §4.2, §4.3). Empty in our own requests.
    pub other: Vec<Field>,
}

impl Request {
    /// The element this form travels in (A8).
    #[must_use]
    pub fn wrapper(&self) -> Wrapper {
        Wrapper::Feature
    }

    /// Whether this is a 4-message request (it commits with `dhhashes`).
    #[must_use]
    pub fn is_four_message(&self) -> bool {
        matches!(self.dh, DhOffer::Hashes(_))
    }

    /// Parses a request.
    ///
    /// # Errors
    /// Missing or malformed fields; a number of DH values different from the number of groups.
    pub fn parse(form: &DataForm) -> Result<Self> {
        if form.type_ != FormType::Form {
            return Err(Error::WrongDataFormType);
        }
        let r = Reader::new(form)?;
        let offers = Offers::read(&r)?;
        let dh = match (r.get("dhhashes"), r.get("dhkeys")) {
            (Some(_), None) => DhOffer::Hashes(r.b64_list("dhhashes")?),
            (None, Some(_)) => DhOffer::Keys(r.b64_list("dhkeys")?),
            (None, None) => return Err(Error::MissingField("dhhashes")),
            (Some(_), Some(_)) => {
                return Err(Error::BadValue { var: "dhkeys".into(), reason: "both dhhashes and dhkeys" });
            }
        };
        if dh.values().len() != offers.modp.len() {
            let var = if matches!(dh, DhOffer::Hashes(_)) { "dhhashes" } else { "dhkeys" };
            return Err(Error::BadValue { var: var.into(), reason: "one value per modp option" });
        }
        // Each commitment is a SHA-256 output (§4.3, He = SHA256(e)): an empty or short value
        // commits to nothing, and a responder would answer and keep state for it.
        if let DhOffer::Hashes(h) = &dh
            && h.iter().any(|he| he.len() != HE_LEN)
        {
            return Err(Error::BadValue { var: "dhhashes".into(), reason: "a commitment is not 32 octets" });
        }
        // 3-message requests have no sas_algs (I2), except in the deployed dialect, whose
        // requests always carry it: read when present.
        let sas_algs = match (&dh, r.get("sas_algs")) {
            (_, Some(f)) => r.offer_of(f, "sas_algs")?,
            (DhOffer::Hashes(_), None) => return Err(Error::MissingField("sas_algs")),
            (DhOffer::Keys(_), None) => Vec::new(),
        };
        Ok(Self {
            // X155-4.1-04 X155-13-02: a request without `accept` is not a request.
            accept: r.boolean("accept")?,
            offers,
            init_pubkey: r.offer("init_pubkey")?,
            resp_pubkey: r.offer("resp_pubkey")?,
            my_nonce: r.nonce("my_nonce")?,
            sas_algs,
            dh,
            other: others(form, &REQUEST_VARS),
        })
    }

    /// Serializes in the layout of XEP-0116 Example 3 (I1).
    #[must_use]
    pub fn to_form(&self, profile: Profile) -> DataForm {
        // X155-4.1-04: the hidden FORM_TYPE urn:xmpp:ssn (`Writer::new`) and the required
        // boolean `accept`.
        let mut w = Writer::new(profile, FormType::Form);
        let accept = Field::new("accept")
            .typed(FieldType::Boolean)
            .value(if self.accept { "1" } else { "0" })
            .required();
        w.push(accept, true);
        self.offers.write_head(&mut w);
        w.list("init_pubkey", FieldType::ListSingle, &self.init_pubkey, false);
        w.list("resp_pubkey", FieldType::ListSingle, &self.resp_pubkey, false);
        self.offers.write_tail(&mut w);
        w.b64("my_nonce", Some(FieldType::Hidden), &self.my_nonce);
        match &self.dh {
            DhOffer::Hashes(v) => {
                w.list("sas_algs", FieldType::ListSingle, &self.sas_algs, false);
                w.values("dhhashes", Some(FieldType::Hidden), v.iter().map(|h| mpi::b64_encode(h)));
            }
            DhOffer::Keys(v) => {
                if !self.sas_algs.is_empty() {
                    w.list("sas_algs", FieldType::ListSingle, &self.sas_algs, false);
                }
                w.values("dhkeys", Some(FieldType::Hidden), v.iter().map(|e| mpi::b64_encode(e)))
            }
        }
        // Other fields exactly as they were given.
        w.form.fields.extend(self.other.iter().cloned());
        w.finish()
    }
}
