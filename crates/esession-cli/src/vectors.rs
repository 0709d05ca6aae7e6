//! `esession vectors check FILE...`: the test-vector checker (format: docs/vectors.md, from
//! shared/vectors/README.md).
//!
//! Step 1 recomputes, from each file's secrets and recorded public inputs, every value the
//! primitives determine. Steps 2-4 (forms, negotiation replay, stanza replay) belong to the
//! protocol layers and are reported as `skip` until those layers exist. The checker works from
//! the format, never from particular files: a value absent from a file is simply not checked.

use esession_crypto::kdf::{self, SessionKeys, cipher_key};
use esession_crypto::{
    CryptAlg, CtrCipher, DhKeyPair, HashAlg, ModpGroup, PrivateKey, Profile, PublicKey, Role, SecretBytes,
    SignAlg, mpi, sas,
};
use esession_forms as forms;
use esession_stanza as stanza;
use serde_json::{Map, Value};
use std::process::ExitCode;

pub(crate) fn main(files: &[&str]) -> ExitCode {
    let mut report = Report::default();
    for f in files {
        check_file(f, &mut report);
    }
    let mut last = format!("{} passed, {} failed", report.passed, report.failed);
    if report.skipped > 0 {
        last.push_str(&format!(", {} skipped", report.skipped));
    }
    println!("{last}");
    if report.failed > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

/// Counts and prints one line per check.
#[derive(Default)]
pub(crate) struct Report {
    passed: usize,
    failed: usize,
    skipped: usize,
}

impl Report {
    fn ok(&mut self, name: &str) {
        self.passed += 1;
        println!("ok {name}");
    }

    fn fail(&mut self, name: &str, why: &str) {
        self.failed += 1;
        println!("FAIL {name}: {why}");
    }

    fn skip(&mut self, name: &str, why: &str) {
        self.skipped += 1;
        println!("skip {name}: {why}");
    }

    /// Compares octets; a computation error is a failure.
    fn bytes(&mut self, name: &str, expected: &[u8], got: Result<Vec<u8>, String>) {
        match got {
            Ok(g) if g == expected => self.ok(name),
            Ok(g) => self.fail(name, &format!("expected {} got {}", short(expected), short(&g))),
            Err(e) => self.fail(name, &format!("expected {} got error: {e}", short(expected))),
        }
    }

    fn truth(&mut self, name: &str, ok: bool, why: &str) {
        if ok { self.ok(name) } else { self.fail(name, why) }
    }
}

fn short(b: &[u8]) -> String {
    let h = hex::encode(b);
    if h.len() > 48 { format!("{}..({} octets)", &h[..48], b.len()) } else { h }
}

fn err(e: esession_crypto::Error) -> String {
    e.to_string()
}

fn check_file(path: &str, report: &mut Report) {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => return report.fail(path, &format!("cannot read: {e}")),
    };
    let v: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => return report.fail(path, &format!("not JSON: {e}")),
    };
    let name = v.get("name").and_then(Value::as_str).unwrap_or(path).to_owned();
    if v.get("kind").and_then(Value::as_str) == Some("negative") {
        negative(path, &name, &v, report);
        return;
    }
    let ctx = match Ctx::new(&name, &v) {
        Ok(c) => c,
        Err(e) => return report.fail(&name, &e),
    };
    ctx.step1(report);
    ctx.step2(report);
    ctx.pubkeys(report);
    ctx.offline_content(report);
    ctx.step4(report);
    ctx.step3(report);
}

/// The ESession data form of a stanza: inside `<feature/>`/`<init/>`, or inside a PEP publish.
fn find_form(stanza: &minidom::Element) -> Option<&minidom::Element> {
    if let Some(w) = forms::esession::Wrapper::find(stanza) {
        return forms::esession::Wrapper::unwrap(w).ok().map(|(_, x)| x);
    }
    let pubsub = stanza.children().find(|c| c.name() == "pubsub")?;
    let publish = pubsub.children().find(|c| c.name() == "publish")?;
    let item = publish.children().find(|c| c.name() == "item")?;
    item.children().find(|c| c.is("x", forms::dataform::NS))
}

/// Lower-case hex (an octet string) or a hex integer of any length.
use crate::replay::hex as hex_of;

fn int_u128(v: Option<&Value>) -> Option<u128> {
    mpi::decode_u128(&hex_of(v)?).ok()
}

struct Ctx<'a> {
    name: String,
    v: &'a Value,
    values: &'a Map<String, Value>,
    profile: Profile,
    hash: HashAlg,
    alg: CryptAlg,
    group: ModpGroup,
    mode: u64,
}

impl<'a> Ctx<'a> {
    fn new(name: &str, v: &'a Value) -> Result<Self, String> {
        let values = v.get("values").and_then(Value::as_object).ok_or("no `values` object")?;
        let profile: Profile =
            v.get("profile").and_then(Value::as_str).unwrap_or("xep").parse().map_err(err)?;
        let s = |k: &str| values.get(k).and_then(Value::as_str).map(str::to_owned);
        let hash: HashAlg =
            s("hash").unwrap_or_else(|| "sha256".into()).parse().map_err(|e| format!("{e:?}"))?;
        let alg: CryptAlg = s("crypt_alg").ok_or("no crypt_alg")?.parse().map_err(|e| format!("{e:?}"))?;
        let group = match values.get("modp_group") {
            Some(Value::Number(n)) => ModpGroup::from_number(n.as_u64().unwrap_or(0) as u32),
            Some(Value::String(s)) => s.parse().map_err(err)?,
            _ => return Err("no modp_group".into()),
        };
        let mode = values.get("mode").and_then(Value::as_u64).unwrap_or(3);
        Ok(Self { name: name.to_owned(), v, values, profile, hash, alg, group, mode })
    }

    fn n(&self, what: &str) -> String {
        format!("{} {what}", self.name)
    }

    fn step1(&self, r: &mut Report) {
        if let Some(p) = hex_of(self.values.get("p")) {
            let got = self.group.params().map(|g| g.p_bytes()).map_err(err);
            r.bytes(&self.n("p"), &p, got);
        }
        self.party(r, "values", self.values);
        for rec in ["alice_record", "bob_record"] {
            if let Some(m) = self.v.get(rec).and_then(Value::as_object) {
                self.party(r, rec, m);
            }
        }
        self.xep0200(r);
        self.rekeys(r);
        self.offline(r);
    }

    /// Step 2: parse the recorded stanzas (the negotiation, and for offline sessions Alice's
    /// PEP publish) and normalize their forms under the file's profile: each party's first form
    /// gives formA/formB, its second formA2/formB2 (`identity` and `mac` excluded).
    fn step2(&self, r: &mut Report) {
        let entries: Vec<&Value> = match self.v.get("transcript").and_then(Value::as_array) {
            Some(t) => t
                .iter()
                .filter(|e| {
                    matches!(
                        e.get("kind").and_then(Value::as_str),
                        Some("negotiation" | "offline-start" | "pep-publish")
                    )
                })
                .collect(),
            None => match self.v.get("negotiation_stanzas").and_then(Value::as_array) {
                Some(s) => s.iter().collect(),
                None => return r.skip(&self.n("step 2 (forms)"), "no recorded stanzas"),
            },
        };
        let mut seen = [0usize; 2];
        for (i, entry) in entries.iter().enumerate() {
            let from = entry.get("from").and_then(Value::as_str).unwrap_or("");
            let side = match from {
                "alice" => 0,
                "bob" => 1,
                _ => continue,
            };
            let name = self.n(&format!("stanza[{i}] from {from}"));
            let Some(xml) = entry.get("xml").and_then(Value::as_str) else { continue };
            let stanza = match forms::xml::parse(xml) {
                Ok(s) => s,
                Err(e) => {
                    r.fail(&name, &format!("not XML: {e}"));
                    continue;
                }
            };
            let Some(x) = find_form(&stanza) else { continue };
            match forms::dataform::DataForm::parse(x).and_then(|f| forms::esession::AnyForm::parse(&f)) {
                Ok(_) => r.ok(&format!("{name} parses")),
                Err(e) => r.fail(&format!("{name} parses"), &e.to_string()),
            }
            let key = match (side, seen[side]) {
                (0, 0) => "formA",
                (0, 1) => "formA2",
                (1, 0) => "formB",
                (1, 1) => "formB2",
                _ => continue,
            };
            seen[side] += 1;
            if let Some(expected) = hex_of(self.values.get(key)) {
                let got = forms::normalize::form_content(self.profile, x, &["identity", "mac"]);
                r.bytes(&self.n(key), &expected, got.map_err(|e| e.to_string()));
            }
        }
    }

    /// Step 3: each party replays the recorded stanzas of its peer with its own secrets and
    /// recorded forms, and must reach the recorded SAS, K and state.
    fn step3(&self, r: &mut Report) {
        let offline = self.values.get("kind").and_then(Value::as_str) == Some("offline");
        let stanzas = crate::replay::recorded(self.v);
        for (alice, who) in [(true, "alice"), (false, "bob")] {
            let nm = |k: &str| self.n(&format!("step3 {who} {k}"));
            let reached = if offline {
                crate::offline::replay(self.v, alice, &stanzas, None)
            } else {
                crate::replay::replay(self.v, alice, &stanzas)
            };
            match reached {
                Ok(crate::replay::Reached::Established { sas, k, bodies, sent_ok }) => {
                    r.ok(&nm("established"));
                    let k_key = if self.mode == 4 { "K_final" } else { "K" };
                    if let Some(exp) = hex_of(self.values.get(k_key)) {
                        r.bytes(&nm(k_key), &exp, Ok(k));
                    }
                    if self.mode == 4 {
                        let key = format!("{who}_SAS");
                        let exp =
                            self.values.get(&key).or_else(|| self.values.get("SAS")).and_then(Value::as_str);
                        if let Some(exp) = exp {
                            r.bytes(&nm("SAS"), exp.as_bytes(), Ok(sas.unwrap_or_default().into_bytes()));
                        }
                    }
                    for (seq, ok) in sent_ok {
                        if seq == u64::MAX {
                            r.truth(
                                &nm("replay store holds d and N_B"),
                                ok,
                                "offline.replay_keys not recorded",
                            );
                            continue;
                        }
                        r.truth(
                            &nm(&format!("own stanza {seq} reproduced")),
                            ok,
                            "our identity/MAC differ from the recording",
                        );
                    }
                    for (seq, body) in bodies {
                        let exp = self.recorded_body(seq);
                        match exp {
                            Some(exp) => r.bytes(
                                &nm(&format!("stanza {seq} body")),
                                exp.as_bytes(),
                                Ok(body.unwrap_or_default().into_bytes()),
                            ),
                            None => r.ok(&nm(&format!("stanza {seq} decrypted"))),
                        }
                    }
                }
                Ok(crate::replay::Reached::Rejected { seq, check, condition }) => {
                    r.fail(&nm("established"), &format!("refused stanza {seq}: {check} ({condition})"))
                }
                Ok(crate::replay::Reached::Incomplete(why)) => r.fail(&nm("established"), &why),
                Err(e) => r.fail(&nm("replay"), &e),
            }
        }
    }

    /// The body the recording says the receiver of stanza `seq` got.
    fn recorded_body(&self, seq: u64) -> Option<String> {
        let entries = self.v.get("xep0200").and_then(Value::as_array)?;
        let e = entries.iter().find(|e| e.get("seq").and_then(Value::as_u64) == Some(seq))?;
        e.pointer("/recv/body").and_then(Value::as_str).map(str::to_owned)
    }

    /// Step 4: every `xep0200` entry through the code a live session uses: the sender's recorded
    /// state (keys, counter, `<key/>`/`<new/>`/`<old/>`) re-seals m to the recorded `<data/>` and
    /// MAC; the receiver parses the wire `<c/>`, verifies its MAC at its recorded counter and
    /// decrypts back to the body, or reproduces the recorded rejection.
    fn step4(&self, r: &mut Report) {
        let mut entries: Vec<(String, &Value)> = match self.v.get("xep0200").and_then(Value::as_array) {
            Some(a) => a.iter().enumerate().map(|(i, e)| (format!("xep0200[{i}]"), e)).collect(),
            None => Vec::new(),
        };
        // The termination section records its terminate and acknowledgement the same way.
        for k in ["terminate", "ack"] {
            if let Some(e) = self.v.pointer(&format!("/termination/{k}")).filter(|e| e.is_object()) {
                entries.push((format!("termination.{k}"), e));
            }
        }
        let transcript = self.v.get("transcript").and_then(Value::as_array);
        for (label, e) in entries {
            let nm = |k: &str| self.n(&format!("step4 {label}.{k}"));
            let (Some(send), recv) = (e.get("send"), e.get("recv")) else { continue };
            let alg: CryptAlg = send
                .get("cipher")
                .and_then(Value::as_str)
                .map_or_else(|| self.alg.clone(), |s| s.parse().unwrap_or(CryptAlg::Unknown(s.into())));
            let key_of = |o: &Value| hex_of(o.get("cipher_key")).or_else(|| hex_of(send.get("cipher_key")));
            let Some(ck) = key_of(send) else { continue };
            let cipher = match CtrCipher::new(&alg, self.profile, &SecretBytes::new(ck)) {
                Ok(c) => c,
                Err(e) => {
                    r.fail(&nm("cipher"), &err(e));
                    continue;
                }
            };
            let (Some(km), Some(c0)) = (hex_of(send.get("mac_key")), int_u128(send.get("counter_before")))
            else {
                continue;
            };
            let m = hex_of(send.get("m"))
                .filter(|m| !m.is_empty() || send.get("m_final").is_some_and(|v| !v.is_null()));
            let key = hex_of(send.get("key"));
            let new = send.get("new").and_then(Value::as_u64).filter(|n| *n > 0).map(|n| n as u32);
            let old: Vec<Vec<u8>> = send
                .get("old")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|o| hex_of(Some(o))).collect())
                .unwrap_or_default();
            match stanza::session::seal_raw(&self.hash, &cipher, &km, c0, m.as_deref(), key, new, old) {
                Ok((sealed, after)) => {
                    if let Some(exp) = hex_of(send.get("m_final")) {
                        r.bytes(&nm("send.m_final"), &exp, Ok(sealed.data.clone().unwrap_or_default()));
                    }
                    if let Some(exp) = hex_of(send.get("m_content")) {
                        r.bytes(&nm("send.m_content"), &exp, Ok(sealed.m_content().to_vec()));
                    }
                    if let Some(exp) = hex_of(send.get("a_mac")) {
                        r.bytes(&nm("send.a_mac"), &exp, Ok(sealed.mac.clone()));
                    }
                    if let Some(exp) = int_u128(send.get("counter_after")) {
                        r.bytes(
                            &nm("send.counter_after"),
                            &exp.to_be_bytes(),
                            Ok(after.to_be_bytes().to_vec()),
                        );
                    }
                }
                Err(e) => r.fail(&nm("send"), &e.to_string()),
            }
            let Some(recv) = recv else { continue };
            let wire = e.get("wire").or_else(|| send.get("wire")).and_then(Value::as_str).or_else(|| {
                let seq = e.get("seq")?.as_u64()?;
                transcript?
                    .iter()
                    .find(|t| t.get("seq").and_then(Value::as_u64) == Some(seq))?
                    .get("xml")?
                    .as_str()
            });
            let Some(wire) = wire else {
                r.skip(&nm("recv"), "no wire stanza recorded");
                continue;
            };
            let expect_error = recv.get("error").is_some_and(|v| !v.is_null());
            let outcome = self.receive(recv, &alg, (&km, &key_of(send).unwrap_or_default()), wire);
            match (outcome, expect_error) {
                (Ok((m_content, body)), false) => {
                    if let Some(exp) = hex_of(recv.get("m_content")) {
                        r.bytes(&nm("recv.m_content"), &exp, Ok(m_content));
                    }
                    match (recv.get("body").and_then(Value::as_str), body) {
                        (Some(exp), got) => r.bytes(
                            &nm("recv.body"),
                            exp.as_bytes(),
                            Ok(got.unwrap_or_default().into_bytes()),
                        ),
                        (None, _) => r.ok(&nm("recv verified and decrypted")),
                    }
                }
                (Err(why), true) => r.ok(&format!("{} (rejected: {why})", nm("recv.rejection"))),
                (Ok(_), true) => r.fail(&nm("recv.rejection"), "the recorded rejection was not reproduced"),
                (Err(why), false) => r.fail(&nm("recv"), &why),
            }
        }
    }

    /// The receiver's side of one stanza: parse `<c/>`, verify at the recorded counter, decrypt,
    /// parse the content. Returns m_content and the body.
    fn receive(
        &self,
        recv: &Value,
        alg: &CryptAlg,
        (send_km, send_ck): (&[u8], &[u8]),
        wire: &str,
    ) -> Result<(Vec<u8>, Option<String>), String> {
        let stanza_el = forms::xml::parse(wire).map_err(|e| e.to_string())?;
        let (c, _) = stanza::content::find_c(&stanza_el).map_err(|e| e.to_string())?;
        let c = c.ok_or("no <c/> in the wire stanza")?;
        let parsed = stanza::Encrypted::parse(self.profile, c).map_err(|e| e.to_string())?;
        let counter = int_u128(recv.get("counter_before")).ok_or("no receiver counter")?;
        let km = hex_of(recv.get("mac_key")).unwrap_or_else(|| send_km.to_vec());
        stanza::session::verify(self.profile, &self.hash, &km, &parsed, counter)
            .map_err(|e| e.to_string())?;
        let ck = hex_of(recv.get("cipher_key")).unwrap_or_else(|| send_ck.to_vec());
        let cipher = CtrCipher::new(alg, self.profile, &SecretBytes::new(ck)).map_err(err)?;
        let (m, _) = stanza::session::decrypt_raw(&cipher, counter, &parsed);
        let children = match m {
            Some(m) => stanza::content::parse(&stanza_el.ns(), &m).map_err(|e| e.to_string())?,
            None => Vec::new(),
        };
        let body = children.iter().find(|c| c.name() == "body").map(minidom::Element::text);
        Ok((parsed.m_content().to_vec(), body))
    }

    /// The XEP-0187 options: the signed content is the normalized options form without `signs`.
    fn offline_content(&self, r: &mut Report) {
        let Some(off) = self.v.get("offline") else { return };
        let (Some(form), Some(expected)) =
            (off.get("options_form").and_then(Value::as_str), hex_of(off.get("signed_content")))
        else {
            return;
        };
        let name = self.n("offline.signed_content");
        let got = forms::xml::parse(form).and_then(|x| {
            forms::dataform::DataForm::parse(&x).and_then(|f| forms::esession::OfflineOptions::parse(&f))?;
            forms::normalize::form_content(self.profile, &x, &["signs"])
        });
        r.bytes(&name, &expected, got.map_err(|e| e.to_string()));
    }

    /// pubKeyA/pubKeyB: the normalized `<KeyValue/>` of each signer's key (and, for `hash`
    /// identities, its fingerprint).
    fn pubkeys(&self, r: &mut Report) {
        let Some(alg) = self.sign_alg() else { return };
        for (side, who) in [("A", "alice"), ("B", "bob")] {
            let Some(expected) = hex_of(self.values.get(&format!("pubKey{side}"))) else { continue };
            if expected.is_empty() {
                continue;
            }
            let Some(key) = self.private_key(who, &alg) else { continue };
            let got =
                forms::keyvalue::pubkey_octets(self.profile, &key.public_key()).map_err(|e| e.to_string());
            r.bytes(&self.n(&format!("pubKey{side}")), &expected, got.clone());
            let fp_key = format!("fingerprint{side}");
            let fp = self.v.pointer(&format!("/text/{fp_key}")).and_then(Value::as_str).map(str::to_owned);
            if let (Some(fp), Ok(pk)) = (fp, got) {
                let calc = forms::keyvalue::fingerprint(&self.hash, &pk).map_err(|e| e.to_string());
                r.bytes(&self.n(&fp_key), fp.as_bytes(), calc.map(String::into_bytes));
            }
        }
    }

    /// Looks `key` up in the party's map, then in `values`.
    fn get(&self, m: &'a Map<String, Value>, key: &str) -> Option<Vec<u8>> {
        hex_of(m.get(key)).or_else(|| hex_of(self.values.get(key)))
    }

    fn party(&self, r: &mut Report, label: &str, m: &'a Map<String, Value>) {
        let g = self.group;
        let nm = |k: &str| self.n(&format!("{label}.{k}"));
        // Per-group key pairs (Alice offers one e per group; offline options publish one each).
        for (key, val) in m {
            for prefix in ["x_modp", "offline_x_modp"] {
                let Some(num) = key.strip_prefix(prefix) else { continue };
                let Ok(grp) = num.parse::<ModpGroup>() else { continue };
                let epfx = prefix.replace("x_", "e_");
                let (Some(x), Some(e)) = (hex_of(Some(val)), hex_of(m.get(&format!("{epfx}{num}")))) else {
                    continue;
                };
                let got = DhKeyPair::from_exponent(grp, &x).map(|k| k.public().to_vec()).map_err(err);
                r.bytes(&nm(&format!("{epfx}{num}")), &e, got);
                if let Some(he) = hex_of(m.get(&format!("He_modp{num}"))) {
                    r.bytes(
                        &nm(&format!("He_modp{num}")),
                        &he,
                        Ok(esession_crypto::hash::sha256(&e).to_vec()),
                    );
                }
            }
        }
        let x = hex_of(m.get("x"));
        let y = hex_of(m.get("y"));
        let e = self.get(m, "e");
        let d = self.get(m, "d");
        if let (Some(x), Some(e)) = (&x, hex_of(m.get("e"))) {
            let got = DhKeyPair::from_exponent(g, x).map(|k| k.public().to_vec()).map_err(err);
            r.bytes(&nm("e"), &e, got);
        }
        if let (Some(y), Some(d)) = (&y, hex_of(m.get("d"))) {
            let got = DhKeyPair::from_exponent(g, y).map(|k| k.public().to_vec()).map_err(err);
            r.bytes(&nm("d"), &d, got);
        }
        if let (Some(he), Some(e)) = (hex_of(m.get("He")), &e) {
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
            if let (Some(exp), Some(z)) = (hex_of(m.get(zk)), &z) {
                r.bytes(&nm(zk), &exp, Ok(z.clone()));
            }
        }
        let k = match &z {
            Some(z) => self.hash.digest(&[z]).ok(),
            None => self.get(m, "K"),
        };
        let Some(k) = k else { return };
        if let Some(exp) = hex_of(m.get("K")) {
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
        if let Some(exp) = hex_of(m.get("K_final_input")) {
            r.bytes(&nm("K_final_input"), &exp, Ok(kfi.clone()));
        }
        let srs_s = (!srs.is_empty()).then(|| SecretBytes::from_slice(&srs));
        let oss_s = (!oss.is_empty()).then(|| SecretBytes::from_slice(&oss));
        let k_final = kdf::final_k(&self.hash, &k, srs_s.as_ref(), oss_s.as_ref());
        let Ok(k_final) = k_final else { return r.fail(&nm("K_final"), "hash unsupported") };
        if self.mode == 4 {
            if let Some(exp) = hex_of(m.get("K_final")) {
                r.bytes(&nm("K_final"), &exp, Ok(k_final.expose_secret().to_vec()));
            }
            self.key_set(r, label, m, "_final", &k_final);
            if let Some(exp) = hex_of(m.get("new_retained_secret")) {
                let got = kdf::new_retained_secret(&self.hash, &k_final).map(|s| s.expose_secret().to_vec());
                r.bytes(&nm("new_retained_secret"), &exp, got.map_err(err));
            }
            if let (Some(srs), Some(exp)) = (&srs_s, hex_of(m.get("srshash"))) {
                r.bytes(&nm("srshash"), &exp, kdf::srshash(&self.hash, srs).map_err(err));
            }
        }
        // Alice's identity travels under the keys of K; in a 4-message negotiation Bob's
        // identity (and the session) uses the keys of K_final (XEP-0116 4.6.3, 4.7.3).
        let bob_k = if self.mode == 4 { &k_final } else { &k };
        let (Ok(keys_a), Ok(keys_b)) =
            (SessionKeys::derive(&self.hash, &k), SessionKeys::derive(&self.hash, bob_k))
        else {
            return;
        };
        self.sigma(r, label, m, &keys_a, &keys_b);
    }

    /// KCA/KMA/KSA/KCB/KMB/KSB with a suffix, and their `_cipher_key`s.
    fn key_set(&self, r: &mut Report, label: &str, m: &Map<String, Value>, suffix: &str, k: &SecretBytes) {
        let Ok(keys) = SessionKeys::derive(&self.hash, k) else { return };
        for (side, dk) in [("A", &keys.initiator), ("B", &keys.responder)] {
            for (kind, val) in [("KC", &dk.kc), ("KM", &dk.km), ("KS", &dk.ks)] {
                let key = format!("{kind}{side}{suffix}");
                if let Some(exp) = hex_of(m.get(&key)) {
                    r.bytes(&self.n(&format!("{label}.{key}")), &exp, Ok(val.expose_secret().to_vec()));
                }
            }
            let key = format!("KC{side}{suffix}_cipher_key");
            if let Some(exp) = hex_of(m.get(&key)) {
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
        m: &'a Map<String, Value>,
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
                let Some(input) = hex_of(m.get(&input_key)) else { continue };
                let parts: Option<Vec<Vec<u8>>> = if side == "A" {
                    let pk = self.get(m, &format!("pubKeyA{calc}")).or_else(|| self.get(m, "pubKeyA"));
                    vec![
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
                    let pk = self.get(m, &format!("pubKeyB{calc}")).or_else(|| self.get(m, "pubKeyB"));
                    let mut p = vec![na.clone(), nb.clone(), self.get(m, "d"), pk, self.get(m, "formB")];
                    if self.mode == 4 {
                        p.push(self.get(m, "formB2"));
                    }
                    p.into_iter().collect()
                };
                if let Some(parts) = parts {
                    r.bytes(&nm(&input_key), &input, Ok(parts.concat()));
                }
                if let Some(exp) = hex_of(m.get(&mac_key)) {
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

    fn private_key(&self, who: &str, sign_alg: &SignAlg) -> Option<PrivateKey> {
        crate::replay::private_key(self.v, who, Some(sign_alg))
    }

    fn sign_alg(&self) -> Option<SignAlg> {
        let s = self.values.get("sign_alg")?.as_str()?;
        s.parse().ok()
    }

    /// signX over macX: verify with the signer's public key, and re-sign (both algorithms are
    /// deterministic: PKCS#1 v1.5, and DSA with RFC 6979 k) to compare octets.
    fn signature(&self, r: &mut Report, label: &str, m: &Map<String, Value>, side: &str) {
        let Some(sig) = hex_of(m.get(&format!("sign{side}"))) else { return };
        let Some(mac) = self.get(m, &format!("mac{side}")) else { return };
        let Some(alg) = self.sign_alg() else { return };
        let who = if side == "A" { "alice" } else { "bob" };
        let nm = self.n(&format!("{label}.sign{side}"));
        let Some(key) = self.private_key(who, &alg) else {
            return r.skip(&nm, "signer's key not in inputs");
        };
        let verified = key.public_key().verify(self.profile, &alg, &mac, &sig).is_ok();
        r.truth(&format!("{nm} verifies"), verified, "signature does not verify with the signer's key");
        let mut rng = getrandom::rand_core::UnwrapErr(getrandom::SysRng);
        let got = key.sign(self.profile, &alg, &mac, &mut rng).map_err(err);
        r.bytes(&format!("{nm} re-signed"), &sig, got);
    }

    /// IDX_plaintext, IDX = CIPHER(KCX, CX, plaintext), CX after, MX.
    fn identity(&self, r: &mut Report, label: &str, m: &Map<String, Value>, side: &str, keys: &SessionKeys) {
        let nm = |k: &str| self.n(&format!("{label}.{k}"));
        let dk = if side == "A" { &keys.initiator } else { &keys.responder };
        let pub_field = if side == "A" { "init_pubkey" } else { "resp_pubkey" };
        let ptk = format!("ID{side}_plaintext");
        let plaintext = hex_of(m.get(&ptk));
        if let Some(pt) = &plaintext {
            let how = self.values.get(pub_field).and_then(Value::as_str).unwrap_or("");
            let expected = match how {
                "none" => self.get(m, &format!("mac{side}")),
                "key" | "hash" => {
                    let id = if how == "key" {
                        self.get(m, &format!("pubKey{side}"))
                    } else {
                        self.v
                            .pointer(&format!("/text/fingerprint{side}"))
                            .and_then(Value::as_str)
                            .map(|s| s.as_bytes().to_vec())
                            .or_else(|| self.get(m, &format!("fingerprint{side}")))
                    };
                    let sig = self.get(m, &format!("sign{side}"));
                    match (id, sig) {
                        (Some(mut id), Some(sig)) => {
                            id.extend_from_slice(
                                format!("<SignatureValue>{}</SignatureValue>", mpi::b64_encode(&sig))
                                    .as_bytes(),
                            );
                            Some(id)
                        }
                        _ => None,
                    }
                }
                _ => None,
            };
            if let Some(exp) = expected {
                r.bytes(&nm(&ptk), pt, Ok(exp));
            }
        }
        let counter_key = format!("C{side}_before_identity");
        let c = int_u128(m.get(&counter_key)).or_else(|| int_u128(m.get(&format!("C{side}"))));
        let Some(c) = c else { return };
        let Ok(ck) = cipher_key(self.profile, &self.alg, &dk.kc) else { return };
        let Ok(cipher) = CtrCipher::new(&self.alg, self.profile, &ck) else {
            return r.fail(&nm(&format!("ID{side}")), "cannot key the cipher");
        };
        if let (Some(pt), Some(exp)) = (&plaintext, hex_of(m.get(&format!("ID{side}")))) {
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
        // The receiver's decryption of the identity it got.
        let dec_key = format!("ID{side}_decrypted");
        if let (Some(exp), Some(id)) = (hex_of(m.get(&dec_key)), self.get(m, &format!("ID{side}"))) {
            let mut data = id;
            let _ = cipher.decrypt(c, &mut data);
            // Gajim pads with spaces: the decryption keeps them, the record may not.
            if self.profile == Profile::Gajim
                && data.len() > exp.len()
                && data[exp.len()..].iter().all(|&b| b == b' ')
            {
                data.truncate(exp.len());
            }
            r.bytes(&nm(&dec_key), &exp, Ok(data));
        }
        for calc in ["", "_calculated"] {
            let mk = format!("M{side}{calc}");
            let ik = format!("M{side}_input{calc}");
            let Some(input) = hex_of(m.get(&ik)) else { continue };
            if let Some(id) = self.get(m, &format!("ID{side}")) {
                let mut exp_in = mpi::encode_u128(c);
                exp_in.extend_from_slice(&id);
                r.bytes(&nm(&ik), &input, Ok(exp_in));
            }
            if let Some(exp) = hex_of(m.get(&mk)) {
                r.bytes(&nm(&mk), &exp, self.hash.hmac(dk.km.expose_secret(), &[&input]).map_err(err));
            }
        }
        if let ("B", Some(ca), Some(cb)) = (side, int_u128(m.get("CA")), int_u128(m.get("CB"))) {
            r.truth(&nm("CB = CA xor 2^127"), cb == ca ^ (1u128 << 127), "counters are not related");
        }
    }

    fn xep0200(&self, r: &mut Report) {
        let Some(entries) = self.v.get("xep0200").and_then(Value::as_array) else { return };
        for (i, entry) in entries.iter().enumerate() {
            let nm = |k: &str| self.n(&format!("xep0200[{i}].{k}"));
            let Some(send) = entry.get("send") else { continue };
            let alg: CryptAlg = match send.get("cipher").and_then(Value::as_str) {
                Some(s) => s.parse().unwrap_or(CryptAlg::Unknown(s.into())),
                None => self.alg.clone(),
            };
            let c = int_u128(send.get("counter_before"));
            let key = hex_of(send.get("cipher_key"));
            let m = hex_of(send.get("m"));
            if let (Some(c), Some(key), Some(m), Some(exp)) = (c, key, m, hex_of(send.get("m_final"))) {
                let cipher = CtrCipher::new(&alg, self.profile, &SecretBytes::new(key));
                match cipher {
                    Ok(cipher) => {
                        let mut data = m;
                        let after = cipher.encrypt(c, &mut data);
                        if let Some(b64) = send.get("data_b64").and_then(Value::as_str) {
                            r.bytes(
                                &nm("send.data_b64"),
                                b64.as_bytes(),
                                Ok(mpi::b64_encode(&data).into_bytes()),
                            );
                        }
                        r.bytes(&nm("send.m_final"), &exp, Ok(data));
                        if let Some(ea) = int_u128(send.get("counter_after")) {
                            r.bytes(
                                &nm("send.counter_after"),
                                &ea.to_be_bytes(),
                                Ok(after.to_be_bytes().to_vec()),
                            );
                        }
                    }
                    Err(e) => r.fail(&nm("send.m_final"), &err(e)),
                }
            }
            let mac_key = hex_of(send.get("mac_key"));
            if let (Some(c), Some(mcb)) = (c, hex_of(send.get("mac_counter_bytes"))) {
                r.bytes(&nm("send.mac_counter_bytes"), &mcb, Ok(mpi::encode_u128(c)));
            }
            for (side, obj) in [("send", Some(send)), ("recv", entry.get("recv"))] {
                let Some(obj) = obj else { continue };
                let (Some(mc), Some(cb)) =
                    (hex_of(obj.get("m_content")), hex_of(obj.get("mac_counter_bytes")))
                else {
                    continue;
                };
                let input = [mc.as_slice(), cb.as_slice()].concat();
                if let Some(exp) = hex_of(obj.get("a_mac_input")) {
                    r.bytes(&nm(&format!("{side}.a_mac_input")), &exp, Ok(input.clone()));
                }
                let key = hex_of(obj.get("mac_key")).or_else(|| mac_key.clone());
                let tag = if side == "send" { "a_mac" } else { "b_mac" };
                if let (Some(key), Some(exp)) = (key, hex_of(obj.get(tag))) {
                    r.bytes(
                        &nm(&format!("{side}.{tag}")),
                        &exp,
                        self.hash.hmac(&key, &[&input]).map_err(err),
                    );
                }
            }
        }
    }

    fn rekeys(&self, r: &mut Report) {
        let Some(entries) = self.v.get("rekey").and_then(Value::as_array) else { return };
        for (i, entry) in entries.iter().enumerate() {
            let nm = |k: &str| self.n(&format!("rekey[{i}].{k}"));
            let (Some(x), Some(peer)) = (hex_of(entry.get("x")), hex_of(entry.get("peer_public"))) else {
                continue;
            };
            let pair = match DhKeyPair::from_exponent(self.group, &x) {
                Ok(p) => p,
                Err(e) => {
                    r.fail(&nm("x"), &err(e));
                    continue;
                }
            };
            if let Some(e) = hex_of(entry.get("e")) {
                r.bytes(&nm("e"), &e, Ok(pair.public().to_vec()));
            }
            let k = match pair.agree(&peer) {
                Ok(z) => z.into_rekey_secret(),
                Err(e) => {
                    r.fail(&nm("K"), &err(e));
                    continue;
                }
            };
            if let Some(exp) = hex_of(entry.get("K")) {
                r.bytes(&nm("K"), &exp, Ok(k.expose_secret().to_vec()));
            }
            if let Some(exp) = hex_of(entry.get("hmac_key")) {
                r.bytes(&nm("hmac_key"), &exp, Ok(k.expose_secret().to_vec()));
            }
            self.rekey_keys(r, &nm(""), entry, &k);
            if let Some(acc) = entry.get("acceptor_computation") {
                let (Some(ex), Some(re)) =
                    (hex_of(acc.get("own_private_used")), hex_of(acc.get("received_e")))
                else {
                    continue;
                };
                let got = DhKeyPair::from_exponent(self.group, &ex).and_then(|p| p.agree(&re));
                match got {
                    Ok(z) => {
                        let k = z.into_rekey_secret();
                        if let Some(exp) = hex_of(acc.get("K")) {
                            r.bytes(&nm("acceptor_computation.K"), &exp, Ok(k.expose_secret().to_vec()));
                        }
                        self.rekey_keys(r, &nm("acceptor_computation."), acc, &k);
                    }
                    Err(e) => r.fail(&nm("acceptor_computation.K"), &err(e)),
                }
            }
        }
    }

    fn rekey_keys(&self, r: &mut Report, prefix: &str, entry: &Value, k: &SecretBytes) {
        let Ok(keys) = kdf::RekeyKeys::derive(&self.hash, k) else { return };
        for (name, val) in [
            ("KC_initiator", &keys.kc_initiator),
            ("KM_initiator", &keys.km_initiator),
            ("KC_acceptor", &keys.kc_acceptor),
            ("KM_acceptor", &keys.km_acceptor),
        ] {
            if let Some(exp) = hex_of(entry.get(name)) {
                r.bytes(&format!("{prefix}{name}"), &exp, Ok(val.expose_secret().to_vec()));
            }
            let ck = format!("{name}_cipher_key");
            if let (true, Some(exp)) = (name.starts_with("KC"), hex_of(entry.get(&ck))) {
                let got = cipher_key(self.profile, &self.alg, val).map(|c| c.expose_secret().to_vec());
                r.bytes(&format!("{prefix}{ck}"), &exp, got.map_err(err));
            }
        }
    }

    fn offline(&self, r: &mut Report) {
        let Some(off) = self.v.get("offline") else { return };
        let nm = |k: &str| self.n(&format!("offline.{k}"));
        if let (Some(xs), Some(es)) =
            (off.get("x").and_then(Value::as_object), off.get("e").and_then(Value::as_object))
        {
            for (grp, x) in xs {
                let Some(num) = grp.strip_prefix("modp") else { continue };
                let (Ok(g), Some(x), Some(e)) =
                    (num.parse::<ModpGroup>(), hex_of(Some(x)), hex_of(es.get(grp)))
                else {
                    continue;
                };
                let got = DhKeyPair::from_exponent(g, &x).map(|k| k.public().to_vec()).map_err(err);
                r.bytes(&nm(&format!("e.{grp}")), &e, got);
            }
        }
        let Some(content) = hex_of(off.get("signed_content")) else { return };
        let Some(signs) = off.get("signs").and_then(Value::as_array) else { return };
        for (i, s) in signs.iter().enumerate() {
            let alg: SignAlg = match s.get("alg").and_then(Value::as_str) {
                Some(a) => a.parse().unwrap_or(SignAlg::Unknown(a.into())),
                None => continue,
            };
            let Some(sig) = hex_of(s.get("signature")) else { continue };
            let p = s.get("public");
            let h = |f: &str| hex_of(p.and_then(|p| p.get(f)));
            let key = match alg {
                SignAlg::RsaSha256 => h("n").zip(h("e")).and_then(|(n, e)| PublicKey::rsa(&n, &e).ok()),
                SignAlg::DsaSha256 => match (h("p"), h("q"), h("g"), h("y")) {
                    (Some(p), Some(q), Some(g), Some(y)) => PublicKey::dsa(&p, &q, &g, &y).ok(),
                    _ => None,
                },
                _ => None,
            };
            let name = nm(&format!("signs[{i}]"));
            match key {
                Some(k) => {
                    let ok = k.verify(self.profile, &alg, &content, &sig).is_ok();
                    r.truth(
                        &format!("{name} verifies"),
                        ok,
                        "signature over the signed content does not verify",
                    );
                }
                None => r.fail(&name, "public key missing or invalid"),
            }
            if let Some(key) = self.private_key("alice", &alg) {
                let mut rng = getrandom::rand_core::UnwrapErr(getrandom::SysRng);
                let got = key.sign(self.profile, &alg, &content, &mut rng).map_err(err);
                r.bytes(&format!("{name} re-signed"), &sig, got);
            }
        }
    }
}

/// A negative file: each variant delivers the base transcript with one stanza substituted; the
/// expected party must refuse it at the expected stanza with the expected check and condition.
fn negative(path: &str, name: &str, v: &Value, report: &mut Report) {
    let Some(base_name) = v.get("base").and_then(Value::as_str) else {
        return report.fail(name, "no base named");
    };
    let dir = std::path::Path::new(path).parent().unwrap_or(std::path::Path::new("."));
    let base = std::fs::read_dir(dir).ok().and_then(|rd| {
        rd.filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .filter_map(|p| std::fs::read_to_string(&p).ok())
            .filter_map(|t| serde_json::from_str::<Value>(&t).ok())
            .find(|b| {
                b.get("name").and_then(Value::as_str) == Some(base_name)
                    && b.get("kind").and_then(Value::as_str) != Some("negative")
            })
    });
    let Some(base) = base else {
        return report.skip(name, &format!("base vector {base_name} not found beside it"));
    };
    let offline = base.pointer("/values/kind").and_then(Value::as_str) == Some("offline");
    let stanzas = crate::replay::recorded(&base);
    for variant in v.get("variants").and_then(Value::as_array).into_iter().flatten() {
        let id = variant.get("id").and_then(Value::as_str).unwrap_or("?");
        let nm = format!("{name} {id}");
        let scenario = variant.get("scenario_patch").filter(|p| !p.is_null());
        if let Some(p) = scenario {
            // Only offline parties read clocks; check the patch applies before replaying.
            if let Err(e) = crate::offline::patched(&base, Some(p)) {
                report.fail(&nm, &format!("scenario_patch: {e}"));
                continue;
            }
        }
        let run = |alice: bool, stanzas: &[crate::replay::Recorded]| {
            if offline {
                crate::offline::replay(&base, alice, stanzas, scenario)
            } else {
                crate::replay::replay(&base, alice, stanzas)
            }
        };
        let seq = variant.get("seq").and_then(Value::as_u64);
        let delivered: Option<Vec<String>> = match variant.get("delivered_at_seq") {
            Some(Value::Array(a)) => Some(a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect()),
            Some(Value::String(s)) => Some(vec![s.clone()]),
            _ => None,
        };
        let expected = variant.get("expected").filter(|e| !e.is_null());
        let rejecting_alice =
            expected.and_then(|e| e.get("rejected_by")).and_then(Value::as_str) == Some("alice");
        let patched = match (seq, delivered) {
            (Some(seq), Some(d)) => patch(&stanzas, variant, seq, &d, rejecting_alice),
            // A clock variant may deliver the base transcript unchanged.
            _ if scenario.is_some() => stanzas.clone(),
            _ => {
                report.fail(&nm, "the variant names no seq/delivered_at_seq and no scenario_patch");
                continue;
            }
        };
        match expected {
            None => {
                for alice in [true, false] {
                    let ok = matches!(run(alice, &patched), Ok(crate::replay::Reached::Established { .. }));
                    report.truth(
                        &format!("{nm} accepted by {}", if alice { "alice" } else { "bob" }),
                        ok,
                        "the variant was refused",
                    );
                }
            }
            Some(exp) => {
                let who = exp.get("rejected_by").and_then(Value::as_str).unwrap_or("");
                let at = exp.get("at_seq").and_then(Value::as_u64);
                let check = exp.get("check").and_then(Value::as_str).unwrap_or("");
                let condition = exp.get("condition").and_then(Value::as_str).unwrap_or("");
                match run(who == "alice", &patched) {
                    Ok(crate::replay::Reached::Rejected {
                        seq: got_seq,
                        check: got_check,
                        condition: got_cond,
                    }) => {
                        let ok = Some(got_seq) == at && got_check == check && got_cond == condition;
                        report.truth(
                            &nm,
                            ok,
                            &format!("expected {who} to refuse stanza {at:?} ({check}, {condition}), got stanza {got_seq} ({got_check}, {got_cond})"),
                        );
                    }
                    Ok(_) => report
                        .fail(&nm, &format!("expected {who} to refuse stanza {at:?} ({check}); it did not")),
                    Err(e) => report.fail(&nm, &e),
                }
            }
        }
    }
}

/// The stanzas a party sees in a negative variant: the base before `seq`; at `seq` the delivered
/// stanza(s) if the peer sent it (our own is what we sent, the original); after `seq`, the peer's
/// stanzas of the tampered run (`transcript`) and our own originals.
fn patch(
    base: &[crate::replay::Recorded],
    variant: &Value,
    seq: u64,
    delivered: &[String],
    me_alice: bool,
) -> Vec<crate::replay::Recorded> {
    let mut out: Vec<crate::replay::Recorded> = base.iter().filter(|s| s.seq < seq).cloned().collect();
    if let Some(at) = base.iter().find(|s| s.seq == seq) {
        if at.alice == me_alice {
            out.push(at.clone());
        } else {
            for xml in delivered {
                out.push(crate::replay::Recorded { xml: xml.clone(), ..at.clone() });
            }
        }
    }
    let later: Vec<crate::replay::Recorded> = match variant.get("transcript").and_then(Value::as_array) {
        Some(t) => t
            .iter()
            .filter_map(|e| {
                let s = e.get("seq")?.as_u64()?;
                let from = e.get("from")?.as_str()?;
                let kind = e.get("kind")?.as_str()?;
                if s <= seq || kind == "error" || !(from == "alice" || from == "bob" || kind == "pep-items") {
                    return None;
                }
                let alice = from == "alice" || kind == "pep-items";
                if alice == me_alice {
                    return base.iter().find(|b| b.seq == s).cloned();
                }
                Some(crate::replay::Recorded {
                    seq: s,
                    alice,
                    kind: kind.to_owned(),
                    xml: e.get("xml")?.as_str()?.to_owned(),
                    entry: None,
                })
            })
            .collect(),
        None => base.iter().filter(|s| s.seq > seq).cloned().collect(),
    };
    out.extend(later);
    out
}
