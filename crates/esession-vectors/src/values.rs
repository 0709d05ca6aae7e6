//! Step 1: recompute every value the primitives determine from the secrets and the recorded
//! public inputs, under the file's profile, and compare it with the file: p; e, d and the
//! per-group e/He; Z, K; the provisory, final and 3-message keys with their cipher keys; K_final,
//! srshash, the new retained secret; macA/macB from their parts; the signatures; the identity
//! plaintexts, ID_A/ID_B, the counters around them, M_A/M_B; the SAS; every re-key's values;
//! the offline options' e and signatures; pubKeyA/pubKeyB and fingerprints.
//!
//! Each check runs on `values` and on each party's record. A value absent from a file is not
//! checked; a value present whose check cannot be made is reported as `skip` with the reason.

use crate::format::{Vector, Who, hex, int_u128};
use crate::report::Report;
use esession_crypto::kdf::{self, SessionKeys, cipher_key};
use esession_crypto::{
    CryptAlg, CtrCipher, DhKeyPair, HashAlg, ModpGroup, Profile, PublicKey, Role, SecretBytes, SignAlg, mpi,
    sas,
};
use esession_forms::keyvalue;
use serde_json::{Map, Value};

fn err(e: esession_crypto::Error) -> String {
    e.to_string()
}

/// The cipher block in octets (n = 128 for every cipher, I7).
const BLOCK: usize = 16;

/// `data` as the profile encrypts it: `Profile::Gajim` right-pads with spaces to whole blocks
/// (but not with the cipher `none`); `Profile::Xep` does not pad.
pub(crate) fn as_encrypted(profile: Profile, alg: &CryptAlg, data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    if profile == Profile::Gajim && *alg != CryptAlg::None && !out.len().is_multiple_of(BLOCK) {
        out.resize(out.len() + BLOCK - out.len() % BLOCK, b' ');
    }
    out
}

struct Ctx<'a> {
    v: &'a Vector,
    profile: Profile,
    hash: HashAlg,
    alg: CryptAlg,
    group: ModpGroup,
    mode: u64,
    sign_alg: Option<SignAlg>,
}

/// Step 1 on a positive vector.
pub(crate) fn check(v: &Vector, r: &mut Report) {
    let ctx = match (v.hash(), v.crypt_alg(), v.group()) {
        (Ok(hash), Ok(alg), Ok(group)) => Ctx {
            v,
            profile: v.profile,
            hash,
            alg,
            group,
            mode: v.mode().unwrap_or(3),
            sign_alg: v.sign_alg(),
        },
        (h, c, g) => {
            let why: Vec<String> = [h.err(), c.err(), g.err()].into_iter().flatten().collect();
            return r
                .fail(&v.n("step1"), &format!("cannot read the negotiated algorithms: {}", why.join("; ")));
        }
    };
    if let Some(p) = v.value_hex("p") {
        let got = ctx.group.params().map(|g| g.p_bytes()).map_err(err);
        r.bytes(&v.n("p"), &p, got);
    }
    if let Some(values) = v.values() {
        ctx.party(r, "values", values);
    }
    for who in [Who::Alice, Who::Bob] {
        if let Some(m) = v.record(who) {
            ctx.party(r, &format!("{}_record", who.as_str()), m);
        }
    }
    ctx.pubkeys(r);
    ctx.rekeys(r);
    ctx.offline(r);
}

impl Ctx<'_> {
    fn n(&self, what: &str) -> String {
        self.v.n(what)
    }

    /// Looks `key` up in the party's map, then in `values`.
    fn get(&self, m: &Map<String, Value>, key: &str) -> Option<Vec<u8>> {
        hex(m.get(key).filter(|v| !v.is_null())).or_else(|| self.v.value_hex(key))
    }

    fn party(&self, r: &mut Report, label: &str, m: &Map<String, Value>) {
        let g = self.group;
        let nm = |k: &str| self.n(&format!("{label}.{k}"));
        // Per-group key pairs (Alice offers one e per group; offline options publish one each).
        for (key, val) in m {
            for prefix in ["x_modp", "offline_x_modp"] {
                let Some(num) = key.strip_prefix(prefix) else { continue };
                let Ok(grp) = num.parse::<ModpGroup>() else { continue };
                let epfx = prefix.replace("x_", "e_");
                let (Some(x), Some(e)) = (hex(Some(val)), hex(m.get(&format!("{epfx}{num}")))) else {
                    continue;
                };
                let got = DhKeyPair::from_exponent(grp, &x).map(|k| k.public().to_vec()).map_err(err);
                r.bytes(&nm(&format!("{epfx}{num}")), &e, got);
                if let Some(he) = hex(m.get(&format!("He_modp{num}"))) {
                    r.bytes(
                        &nm(&format!("He_modp{num}")),
                        &he,
                        Ok(esession_crypto::hash::sha256(&e).to_vec()),
                    );
                }
            }
        }
        let x = hex(m.get("x"));
        let y = hex(m.get("y"));
        let e = self.get(m, "e");
        let d = self.get(m, "d");
        if let (Some(x), Some(e)) = (&x, hex(m.get("e"))) {
            let got = DhKeyPair::from_exponent(g, x).map(|k| k.public().to_vec()).map_err(err);
            r.bytes(&nm("e"), &e, got);
        }
        if let (Some(y), Some(d)) = (&y, hex(m.get("d"))) {
            let got = DhKeyPair::from_exponent(g, y).map(|k| k.public().to_vec()).map_err(err);
            r.bytes(&nm("d"), &d, got);
        }
        if let (Some(he), Some(e)) = (hex(m.get("He")), &e) {
            r.bytes(&nm("He"), &he, Ok(esession_crypto::hash::sha256(e).to_vec()));
        }
        // Z from whichever exponent this party holds.
        let z = match (&x, &y, &e, &d) {
            (Some(x), _, _, Some(d)) => DhKeyPair::from_exponent(g, x).and_then(|k| k.agree(d)).ok(),
            (_, Some(y), Some(e), _) => DhKeyPair::from_exponent(g, y).and_then(|k| k.agree(e)).ok(),
            _ => None,
        };
        let z = z.map(|z| z.expose_secret().to_vec());
        for zk in ["Z", "dh_shared_Z"] {
            if let (Some(exp), Some(z)) = (hex(m.get(zk)), &z) {
                r.bytes(&nm(zk), &exp, Ok(z.clone()));
            }
        }
        let k = match &z {
            Some(z) => self.hash.digest(&[z]).ok(),
            None => self.get(m, "K"),
        };
        let Some(k) = k else { return };
        if let Some(exp) = hex(m.get("K")) {
            r.bytes(&nm("K"), &exp, Ok(k.clone()));
        }
        let k = SecretBytes::new(k);
        self.key_set(r, label, m, "_provisory", &k);
        self.key_set(r, label, m, "_3msg", &k);
        // 4-message final K.
        let srs = self.get(m, "SRS").unwrap_or_default();
        let oss = self.get(m, "OSS").unwrap_or_default();
        let mut kfi = k.expose_secret().to_vec();
        kfi.extend_from_slice(&srs);
        kfi.extend_from_slice(&oss);
        if let Some(exp) = hex(m.get("K_final_input")) {
            r.bytes(&nm("K_final_input"), &exp, Ok(kfi));
        }
        let srs_s = (!srs.is_empty()).then(|| SecretBytes::from_slice(&srs));
        let oss_s = (!oss.is_empty()).then(|| SecretBytes::from_slice(&oss));
        let k_final = match kdf::final_k(&self.hash, &k, srs_s.as_ref(), oss_s.as_ref()) {
            Ok(k) => k,
            Err(e) => return r.fail(&nm("K_final"), &err(e)),
        };
        if self.mode == 4 {
            if let Some(exp) = hex(m.get("K_final")) {
                r.bytes(&nm("K_final"), &exp, Ok(k_final.expose_secret().to_vec()));
            }
            self.key_set(r, label, m, "_final", &k_final);
            if let Some(exp) = hex(m.get("new_retained_secret")) {
                let got = kdf::new_retained_secret(&self.hash, &k_final).map(|s| s.expose_secret().to_vec());
                r.bytes(&nm("new_retained_secret"), &exp, got.map_err(err));
            }
            if let (Some(srs), Some(exp)) = (&srs_s, hex(m.get("srshash"))) {
                r.bytes(&nm("srshash"), &exp, kdf::srshash(&self.hash, srs).map_err(err));
            }
            if let (Some(na), Some(list), Some(srs)) =
                (self.get(m, "NA"), m.get("rshashes_real").and_then(Value::as_array), &srs_s)
            {
                // The real rshashes come from the retained secrets; the SRS is one of them.
                let real: Vec<Vec<u8>> = list.iter().filter_map(|h| hex(Some(h))).collect();
                match kdf::rshash(&self.hash, &na, srs) {
                    Ok(h) => r.truth(
                        &nm("rshashes_real holds HMAC(NA, SRS)"),
                        real.contains(&h),
                        "no real rshash is the SRS's",
                    ),
                    Err(e) => r.fail(&nm("rshashes_real"), &err(e)),
                }
            }
        }
        // Alice's identity travels under the keys of K; in a 4-message negotiation Bob's
        // identity (and the session) uses the keys of K_final (XEP-0116 4.6.3, 4.7.3).
        let bob_k = if self.mode == 4 { &k_final } else { &k };
        let (Ok(keys_a), Ok(keys_b)) =
            (SessionKeys::derive(&self.hash, &k), SessionKeys::derive(&self.hash, bob_k))
        else {
            return r.fail(&nm("keys"), "the session keys cannot be derived");
        };
        self.sigma(r, label, m, &keys_a, &keys_b);
    }

    /// KCA/KMA/KSA/KCB/KMB/KSB with a suffix, and their `_cipher_key`s.
    fn key_set(&self, r: &mut Report, label: &str, m: &Map<String, Value>, suffix: &str, k: &SecretBytes) {
        let Ok(keys) = SessionKeys::derive(&self.hash, k) else { return };
        for (side, dk) in [("A", &keys.initiator), ("B", &keys.responder)] {
            for (kind, val) in [("KC", &dk.kc), ("KM", &dk.km), ("KS", &dk.ks)] {
                let key = format!("{kind}{side}{suffix}");
                if let Some(exp) = hex(m.get(&key)) {
                    r.bytes(&self.n(&format!("{label}.{key}")), &exp, Ok(val.expose_secret().to_vec()));
                }
            }
            let key = format!("KC{side}{suffix}_cipher_key");
            if let Some(exp) = hex(m.get(&key)) {
                let got = cipher_key(self.profile, &self.alg, &dk.kc).map(|c| c.expose_secret().to_vec());
                r.bytes(&self.n(&format!("{label}.{key}")), &exp, got.map_err(err));
            }
        }
    }

    /// macA/macB, signatures, ID_A/ID_B, M_A/M_B, SAS.
    fn sigma(
        &self,
        r: &mut Report,
        label: &str,
        m: &Map<String, Value>,
        keys_a: &SessionKeys,
        keys_b: &SessionKeys,
    ) {
        let nm = |k: &str| self.n(&format!("{label}.{k}"));
        let na = self.get(m, "NA");
        let nb = self.get(m, "NB");
        for side in ["A", "B"] {
            let keys = if side == "A" { keys_a } else { keys_b };
            let dk = keys.of(if side == "A" { Role::Initiator } else { Role::Responder });
            // mac_X input: A: NB|NA|e|pubKeyA|formA|formA2; B: NA|NB|d|pubKeyB|formB[|formB2].
            for calc in ["", "_calculated"] {
                let mac_key = format!("mac{side}{calc}");
                let input_key = format!("mac{side}_input{calc}");
                let Some(input) = hex(m.get(&input_key)) else { continue };
                let pk = self
                    .get(m, &format!("pubKey{side}{calc}"))
                    .or_else(|| self.get(m, &format!("pubKey{side}")));
                let parts: Option<Vec<Vec<u8>>> = if side == "A" {
                    [
                        nb.clone(),
                        na.clone(),
                        self.get(m, "e"),
                        pk,
                        self.get(m, "formA"),
                        self.get(m, "formA2"),
                    ]
                    .into_iter()
                    .collect()
                } else {
                    let mut p = vec![na.clone(), nb.clone(), self.get(m, "d"), pk, self.get(m, "formB")];
                    if self.mode == 4 {
                        p.push(self.get(m, "formB2"));
                    }
                    p.into_iter().collect()
                };
                match parts {
                    Some(parts) => r.bytes(&nm(&input_key), &input, Ok(parts.concat())),
                    None => r.skip(&nm(&input_key), "one of its parts is not in the file"),
                }
                if let Some(exp) = hex(m.get(&mac_key)) {
                    let got = self.hash.hmac(dk.ks.expose_secret(), &[&input]).map_err(err);
                    r.bytes(&nm(&mac_key), &exp, got);
                }
            }
            self.signature(r, label, m, side);
            self.identity(r, label, m, side, keys);
        }
        if self.mode == 4 {
            let (Some(ma), Some(form_b)) = (self.get(m, "MA"), self.get(m, "formB")) else { return };
            for key in ["SAS", "alice_SAS", "bob_SAS"] {
                let Some(exp) = m.get(key).and_then(Value::as_str) else { continue };
                let got = sas::sas28x5(self.profile, &self.hash, &ma, &form_b)
                    .map(|s| s.as_str().as_bytes().to_vec());
                r.bytes(&nm(key), exp.as_bytes(), got.map_err(err));
            }
        }
    }

    /// The key that verifies party `who`'s signatures: its own key, else the key its peer
    /// trusts for it.
    fn signer_public(&self, who: Who, alg: &SignAlg) -> Option<PublicKey> {
        self.v.public_keys(who).into_iter().chain(self.v.trusted(who.peer()).0).find(|k| k.alg() == *alg)
    }

    /// signX over macX: verified with the signer's public key, and re-signed (both schemes are
    /// deterministic: PKCS#1 v1.5 or Gajim's textbook RSA, and DSA with RFC 6979 k) to compare
    /// octets.
    fn signature(&self, r: &mut Report, label: &str, m: &Map<String, Value>, side: &str) {
        let Some(sig) = hex(m.get(&format!("sign{side}")).filter(|s| !s.is_null())) else { return };
        let name = self.n(&format!("{label}.sign{side}"));
        let who = if side == "A" { Who::Alice } else { Who::Bob };
        let Some(mac) =
            self.get(m, &format!("mac{side}")).or_else(|| self.get(m, &format!("mac{side}_calculated")))
        else {
            return r.skip(&name, &format!("mac{side} is not in the file"));
        };
        let Some(alg) = self.sign_alg.clone() else {
            return r.skip(&name, "no sign_alg, and no pubKey or key type names the algorithm");
        };
        match self.signer_public(who, &alg) {
            Some(key) => {
                let ok = key.verify(self.profile, &alg, &mac, &sig);
                r.truth(
                    &format!("{name} verifies"),
                    ok.is_ok(),
                    "the signature does not verify with the signer's key",
                );
            }
            None => r.skip(
                &format!("{name} verifies"),
                &format!("no {} public key of {} in the inputs", alg.as_str(), who.as_str()),
            ),
        }
        match self.v.private_key(who, &alg) {
            Some(key) => {
                let mut rng = getrandom::rand_core::UnwrapErr(getrandom::SysRng);
                let got = key.sign(self.profile, &alg, &mac, &mut rng).map_err(err);
                r.bytes(&format!("{name} re-signed"), &sig, got);
            }
            None => r.skip(
                &format!("{name} re-signed"),
                &format!("no {} private key of {} in the inputs", alg.as_str(), who.as_str()),
            ),
        }
    }

    /// IDX_plaintext, IDX = CIPHER(KCX, CX, plaintext), CX after, MX.
    fn identity(&self, r: &mut Report, label: &str, m: &Map<String, Value>, side: &str, keys: &SessionKeys) {
        let nm = |k: &str| self.n(&format!("{label}.{k}"));
        let dk = if side == "A" { &keys.initiator } else { &keys.responder };
        let pub_field = if side == "A" { "init_pubkey" } else { "resp_pubkey" };
        let ptk = format!("ID{side}_plaintext");
        let plaintext = hex(m.get(&ptk));
        if let Some(pt) = &plaintext {
            let how = self.v.value_str(pub_field).unwrap_or("");
            let expected = match how {
                "none" => Ok(self.get(m, &format!("mac{side}"))),
                "key" | "hash" => {
                    let id = if how == "key" {
                        self.get(m, &format!("pubKey{side}"))
                    } else {
                        self.v
                            .v
                            .pointer(&format!("/text/fingerprint{side}"))
                            .and_then(Value::as_str)
                            .map(|s| s.as_bytes().to_vec())
                            .or_else(|| self.get(m, &format!("fingerprint{side}")))
                    };
                    let sig = self.get(m, &format!("sign{side}"));
                    Ok(id.zip(sig).map(|(mut id, sig)| {
                        id.extend_from_slice(keyvalue::signature_value(self.profile, &sig).as_bytes());
                        id
                    }))
                }
                other => Err(format!("{pub_field} {other:?} is not an identity method")),
            };
            match expected {
                // What was encrypted: Gajim pads the identity with spaces (like for like).
                Ok(Some(exp)) => r.bytes(&nm(&ptk), pt, Ok(as_encrypted(self.profile, &self.alg, &exp))),
                Ok(None) => {
                    r.skip(&nm(&ptk), "its parts (pubKey or fingerprint, signature, mac) are not in the file")
                }
                Err(why) => r.skip(&nm(&ptk), &why),
            }
        }
        let counter_key = format!("C{side}_before_identity");
        let c = int_u128(m.get(&counter_key)).or_else(|| int_u128(m.get(&format!("C{side}"))));
        let Some(c) = c else { return };
        let cipher = cipher_key(self.profile, &self.alg, &dk.kc)
            .and_then(|ck| CtrCipher::new(&self.alg, self.profile, &ck));
        let cipher = match cipher {
            Ok(c) => c,
            Err(e) => return r.fail(&nm(&format!("ID{side}")), &format!("cannot key the cipher: {e}")),
        };
        if let (Some(pt), Some(exp)) = (&plaintext, hex(m.get(&format!("ID{side}")))) {
            let mut data = pt.clone();
            let after = cipher.encrypt(c, &mut data);
            r.bytes(&nm(&format!("ID{side}")), &exp, Ok(data));
            if let Some(exp_after) = int_u128(m.get(&format!("C{side}_after_identity"))) {
                r.bytes(
                    &nm(&format!("C{side}_after_identity")),
                    &exp_after.to_be_bytes(),
                    Ok(after.to_be_bytes().to_vec()),
                );
            }
        }
        // The receiver's decryption of the identity it got, compared like for like: what
        // decrypts is the padded plaintext, so the record is padded the same way.
        let dec_key = format!("ID{side}_decrypted");
        if let (Some(exp), Some(id)) = (hex(m.get(&dec_key)), self.get(m, &format!("ID{side}"))) {
            let mut data = id;
            let _ = cipher.decrypt(c, &mut data);
            r.bytes(&nm(&dec_key), &as_encrypted(self.profile, &self.alg, &exp), Ok(data));
        }
        for calc in ["", "_calculated"] {
            let mk = format!("M{side}{calc}");
            let ik = format!("M{side}_input{calc}");
            let Some(input) = hex(m.get(&ik)) else {
                // M_X without its input: recompute it from C_X and ID_X.
                if let (Some(exp), Some(id)) = (hex(m.get(&mk)), self.get(m, &format!("ID{side}"))) {
                    let got = self.hash.hmac(dk.km.expose_secret(), &[&mpi::encode_u128(c), &id]);
                    r.bytes(&nm(&mk), &exp, got.map_err(err));
                }
                continue;
            };
            if let Some(id) = self.get(m, &format!("ID{side}")) {
                let mut exp_in = mpi::encode_u128(c);
                exp_in.extend_from_slice(&id);
                r.bytes(&nm(&ik), &input, Ok(exp_in));
            }
            if let Some(exp) = hex(m.get(&mk)) {
                r.bytes(&nm(&mk), &exp, self.hash.hmac(dk.km.expose_secret(), &[&input]).map_err(err));
            }
        }
        if let ("B", Some(ca), Some(cb)) = (side, int_u128(m.get("CA")), int_u128(m.get("CB"))) {
            r.truth(&nm("CB = CA xor 2^127"), cb == ca ^ (1u128 << 127), "the counters are not related");
        }
    }

    /// pubKeyA/pubKeyB: the normalized `<KeyValue/>` of each signer's key (`<RSAKeyValue/>` with
    /// its namespace in `Profile::Gajim`) and, for `hash` identities, its fingerprint.
    fn pubkeys(&self, r: &mut Report) {
        for who in [Who::Alice, Who::Bob] {
            let side = who.side();
            let Some(expected) = self.v.value_hex(&format!("pubKey{side}")).filter(|e| !e.is_empty()) else {
                continue;
            };
            let name = self.n(&format!("pubKey{side}"));
            let Some(alg) = self.sign_alg.clone() else {
                r.skip(&name, "no sign_alg, and no key type names the algorithm");
                continue;
            };
            let Some(key) = self.signer_public(who, &alg) else {
                r.skip(&name, &format!("no {} key of {} in the inputs", alg.as_str(), who.as_str()));
                continue;
            };
            let got = keyvalue::pubkey_octets(self.profile, &key).map_err(|e| e.to_string());
            r.bytes(&name, &expected, got.clone());
            let fp_key = format!("fingerprint{side}");
            let fp = self.v.v.pointer(&format!("/text/{fp_key}")).and_then(Value::as_str).map(str::to_owned);
            if let (Some(fp), Ok(pk)) = (fp, got) {
                let calc = keyvalue::fingerprint(&self.hash, &pk).map_err(|e| e.to_string());
                r.bytes(&self.n(&fp_key), fp.as_bytes(), calc.map(String::into_bytes));
            }
        }
    }

    /// Every re-key: e from x, K = peer_public^x (not hashed), the four keys and their cipher
    /// keys, and the acceptor's own computation.
    fn rekeys(&self, r: &mut Report) {
        let Some(entries) = self.v.v.get("rekey").and_then(Value::as_array) else { return };
        for (i, entry) in entries.iter().enumerate() {
            let nm = |k: &str| self.n(&format!("rekey[{i}].{k}"));
            let (Some(x), Some(peer)) = (hex(entry.get("x")), hex(entry.get("peer_public"))) else {
                r.skip(&nm("K"), "the entry has no x or no peer_public");
                continue;
            };
            let pair = match DhKeyPair::from_exponent(self.group, &x) {
                Ok(p) => p,
                Err(e) => {
                    r.fail(&nm("x"), &err(e));
                    continue;
                }
            };
            if let Some(e) = hex(entry.get("e")) {
                r.bytes(&nm("e"), &e, Ok(pair.public().to_vec()));
            }
            let k = match pair.agree(&peer) {
                Ok(z) => z.into_rekey_secret(),
                Err(e) => {
                    r.fail(&nm("K"), &err(e));
                    continue;
                }
            };
            for key in ["K", "hmac_key"] {
                if let Some(exp) = hex(entry.get(key)) {
                    r.bytes(&nm(key), &exp, Ok(k.expose_secret().to_vec()));
                }
            }
            self.rekey_keys(r, &nm(""), entry, &k);
            let Some(acc) = entry.get("acceptor_computation").filter(|a| a.is_object()) else { continue };
            let (Some(ex), Some(re)) = (hex(acc.get("own_private_used")), hex(acc.get("received_e"))) else {
                r.skip(&nm("acceptor_computation"), "no own_private_used or received_e");
                continue;
            };
            match DhKeyPair::from_exponent(self.group, &ex).and_then(|p| p.agree(&re)) {
                Ok(z) => {
                    let k = z.into_rekey_secret();
                    if let Some(exp) = hex(acc.get("K")) {
                        r.bytes(&nm("acceptor_computation.K"), &exp, Ok(k.expose_secret().to_vec()));
                    }
                    self.rekey_keys(r, &nm("acceptor_computation."), acc, &k);
                }
                Err(e) => r.fail(&nm("acceptor_computation.K"), &err(e)),
            }
        }
    }

    fn rekey_keys(&self, r: &mut Report, prefix: &str, entry: &Value, k: &SecretBytes) {
        let keys = match kdf::RekeyKeys::derive(&self.hash, k) {
            Ok(k) => k,
            Err(e) => return r.fail(&format!("{prefix}keys"), &err(e)),
        };
        for (name, val) in [
            ("KC_initiator", &keys.kc_initiator),
            ("KM_initiator", &keys.km_initiator),
            ("KC_acceptor", &keys.kc_acceptor),
            ("KM_acceptor", &keys.km_acceptor),
        ] {
            if let Some(exp) = hex(entry.get(name)) {
                r.bytes(&format!("{prefix}{name}"), &exp, Ok(val.expose_secret().to_vec()));
            }
            let ck = format!("{name}_cipher_key");
            if let (true, Some(exp)) = (name.starts_with("KC"), hex(entry.get(&ck))) {
                let got = cipher_key(self.profile, &self.alg, val).map(|c| c.expose_secret().to_vec());
                r.bytes(&format!("{prefix}{ck}"), &exp, got.map_err(err));
            }
        }
    }

    /// XEP-0187: every published e from its x, and every `signs` value over the signed content
    /// (verified with its public key, re-signed with Alice's key).
    fn offline(&self, r: &mut Report) {
        let Some(off) = self.v.v.get("offline").filter(|o| o.is_object()) else { return };
        let nm = |k: &str| self.n(&format!("offline.{k}"));
        if let (Some(xs), Some(es)) =
            (off.get("x").and_then(Value::as_object), off.get("e").and_then(Value::as_object))
        {
            for (grp, x) in xs {
                let Some(num) = grp.strip_prefix("modp") else { continue };
                let (Ok(g), Some(x), Some(e)) = (num.parse::<ModpGroup>(), hex(Some(x)), hex(es.get(grp)))
                else {
                    r.skip(&nm(&format!("e.{grp}")), "x or e missing, or an unknown group");
                    continue;
                };
                let got = DhKeyPair::from_exponent(g, &x).map(|k| k.public().to_vec()).map_err(err);
                r.bytes(&nm(&format!("e.{grp}")), &e, got);
            }
        }
        let Some(content) = hex(off.get("signed_content")) else { return };
        for (i, s) in off.get("signs").and_then(Value::as_array).into_iter().flatten().enumerate() {
            let name = nm(&format!("signs[{i}]"));
            let Some(alg) = s
                .get("alg")
                .and_then(Value::as_str)
                .map(|a| a.parse().unwrap_or(SignAlg::Unknown(String::new())))
            else {
                r.skip(&name, "no alg");
                continue;
            };
            let Some(sig) = hex(s.get("signature")) else {
                r.skip(&name, "no signature");
                continue;
            };
            let p = s.get("public");
            let h = |f: &str| hex(p.and_then(|p| p.get(f)));
            let key = match alg {
                SignAlg::RsaSha256 => h("n").zip(h("e")).and_then(|(n, e)| PublicKey::rsa(&n, &e).ok()),
                SignAlg::DsaSha256 => match (h("p"), h("q"), h("g"), h("y")) {
                    (Some(p), Some(q), Some(g), Some(y)) => PublicKey::dsa(&p, &q, &g, &y).ok(),
                    _ => None,
                },
                _ => None,
            };
            match key {
                Some(k) => {
                    let ok = k.verify(self.profile, &alg, &content, &sig).is_ok();
                    r.truth(
                        &format!("{name} verifies"),
                        ok,
                        "the signature over the signed content does not verify",
                    );
                }
                None => r.fail(&format!("{name} verifies"), "its public key is missing or invalid"),
            }
            match self.v.private_key(Who::Alice, &alg) {
                Some(key) => {
                    let mut rng = getrandom::rand_core::UnwrapErr(getrandom::SysRng);
                    let got = key.sign(self.profile, &alg, &content, &mut rng).map_err(err);
                    r.bytes(&format!("{name} re-signed"), &sig, got);
                }
                None => r.skip(
                    &format!("{name} re-signed"),
                    &format!("no {} private key of alice in the inputs", alg.as_str()),
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gajim_pads_what_it_encrypts() {
        assert_eq!(as_encrypted(Profile::Gajim, &CryptAlg::Aes128Ctr, b"abc").len(), 16);
        assert_eq!(as_encrypted(Profile::Gajim, &CryptAlg::Aes128Ctr, &[1; 32]).len(), 32);
        assert_eq!(as_encrypted(Profile::Gajim, &CryptAlg::None, b"abc"), b"abc");
        assert_eq!(as_encrypted(Profile::Xep, &CryptAlg::Aes128Ctr, b"abc"), b"abc");
    }
}
