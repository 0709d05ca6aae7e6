//! The defects of issue 17.4 stay fixed: keys of the gajim layout (`inputs.<party>.rsa`, no
//! trusted list, no `sign_alg`) are replayed and signA/signB checked; piggybacked content is
//! replayed both ways; Gajim's padded identity plaintexts are compared like for like.

use super::support::*;
use serde_json::{Value, json};

/// The vector in the gajim layout: each party's keys at `inputs.<party>.{rsa,dsa}`, no
/// trusted list, no `sign_alg` (and, with `drop_transcript`, no transcript).
fn gajim_layout(mut v: Value, drop_transcript: bool) -> Value {
    for who in ["alice", "bob"] {
        let keys = v["inputs"][who]["config"]["keys"].take();
        let mut party = json!({});
        for kind in ["rsa", "dsa"] {
            if !keys[kind].is_null() {
                party[kind] = keys[kind].clone();
            }
        }
        if let Some(now) = v["inputs"][who].get("now").cloned() {
            party["now"] = now;
        }
        v["inputs"][who] = party;
    }
    v["values"].as_object_mut().unwrap().remove("sign_alg");
    if drop_transcript {
        v.as_object_mut().unwrap().remove("transcript");
        for e in v["xep0200"].as_array_mut().unwrap() {
            let wire = e["send"]["wire"].clone();
            e["wire"] = wire;
            e.as_object_mut().unwrap().remove("seq");
        }
    }
    v
}

#[test]
fn gajim_layout_keys_identify_both_parties_offline() {
    let dir = temp_dir("layout-offline");
    let v = gajim_layout(read(&fixture("xep-off_rsa_terminate.json")), false);
    assert!(v.pointer("/inputs/bob/config").is_none() && v.pointer("/inputs/bob/rsa/d").is_some());
    let report = check_value(&dir, "v.json", &v);
    assert_clean(&report);
    assert_eq!(report.skipped(), 0, "{report}");
    let lines = text(&report);
    for l in [
        "ok off_rsa_terminate values.signB verifies",
        "ok off_rsa_terminate values.signB re-signed",
        "ok off_rsa_terminate pubKeyB",
        "ok off_rsa_terminate step3 alice established",
        "ok off_rsa_terminate step3 bob own stanza 2 reproduced",
    ] {
        assert!(lines.iter().any(|x| x == l), "missing {l:?}:\n{report}");
    }
    // The signature is really checked.
    let mut bad = v.clone();
    flip_hex(&mut bad, "/values/signB");
    assert_fails(&check_value(&dir, "bad.json", &bad), "values.signB verifies");
}

#[test]
fn gajim_layout_keys_identify_both_parties_online() {
    let Some(p) = shared("xep-x3_key_rsa_modp5_aes128.json") else { return };
    let dir = temp_dir("layout-online");
    let v = gajim_layout(read(&p), true);
    let report = check_value(&dir, "v.json", &v);
    assert_clean(&report);
    assert_eq!(report.skipped(), 0, "{report}");
    let lines = text(&report);
    for l in [
        "ok x3_key_rsa_modp5_aes128 values.signA verifies",
        "ok x3_key_rsa_modp5_aes128 values.signA re-signed",
        "ok x3_key_rsa_modp5_aes128 values.signB verifies",
        "ok x3_key_rsa_modp5_aes128 step3 alice own stanza 2 reproduced",
        "ok x3_key_rsa_modp5_aes128 step3 bob established",
    ] {
        assert!(lines.iter().any(|x| x == l), "missing {l:?}:\n{report}");
    }
    // Bob trusts Alice's own key (derived): another key for Alice is refused.
    let mut other = v.clone();
    other["inputs"]["alice"]["rsa"] = read(&p)["inputs"]["bob"]["config"]["keys"]["rsa"].clone();
    let report = check_value(&dir, "other.json", &other);
    assert_fails(&report, "values.signA verifies");
    assert_fails(&report, "step3 bob established");
}

/// The `<c/>` of a stanza.
fn c_element(xml: &str) -> String {
    let start = xml.find("<c xmlns=").unwrap();
    let end = xml[start..].find("</c>").unwrap() + start + "</c>".len();
    xml[start..end].to_owned()
}

/// The gajim vector with Bob's first message piggybacked on his fourth negotiation message
/// (XEP-0116 §4.7.4): its `<c/>` moves into that stanza. The counters are the same: content
/// continues Bob's counter after his identity (A9).
fn gajim_piggybacked() -> Value {
    let mut v = read(&gajim_vector());
    assert_eq!(v["xep0200"][2]["from"], "bob");
    let c = c_element(v["xep0200"][2]["wire"].as_str().unwrap());
    let s3 =
        v["negotiation_stanzas"][3]["xml"].as_str().unwrap().replace("</message>", &format!("{c}</message>"));
    v["negotiation_stanzas"][3]["xml"] = Value::String(s3);
    v["xep0200"][2]["in_negotiation_stanza"] = json!(true);
    v["xep0200"][2]["wire"] = Value::Null;
    v
}

#[test]
fn content_piggybacked_on_bobs_identity_is_replayed() {
    let dir = temp_dir("piggy4");
    let report = check_value(&dir, "v.json", &gajim_piggybacked());
    assert_clean(&report);
    let lines = text(&report);
    for l in [
        // Bob encrypts it through Responder::piggyback, under the recorded keys and counter.
        "ok g4_none_modp5 step3 bob own stanza 3 reproduced",
        // ... and his counter moved on: his next stanza is reproduced.
        "ok g4_none_modp5 step3 bob own stanza 7 reproduced",
        // Alice decrypts it with his identity.
        "ok g4_none_modp5 step3 alice stanza 3 body",
        "ok g4_none_modp5 step4 xep0200[2].recv.body",
        "ok g4_none_modp5 step3 alice counters when established",
    ] {
        assert!(lines.iter().any(|x| x == l), "missing {l:?}:\n{report}");
    }
    // Gajim serializes `<active ... />` where we write `<active .../>`: the only skip, with its
    // reason (I16).
    for l in report.lines().iter().filter(|l| l.is_skip()) {
        assert!(l.name.ends_with("own stanza 3 content as the sender serialized it"), "{l}");
    }
    // Broken content fails on both sides.
    let mut bad = gajim_piggybacked();
    let s3 = bad["negotiation_stanzas"][3]["xml"].as_str().unwrap().to_owned();
    let at = s3.find("<c xmlns=").unwrap();
    let data = s3[at..].find("<data>").unwrap() + at + "<data>".len();
    let mut s = s3.clone();
    s.replace_range(data..=data, if &s3[data..=data] == "A" { "B" } else { "A" });
    bad["negotiation_stanzas"][3]["xml"] = Value::String(s);
    let report = check_value(&dir, "bad.json", &bad);
    assert_fails(&report, "step3 alice established");
    assert_fails(&report, "step4 xep0200[2].recv.verify");
}

#[test]
fn content_piggybacked_on_alices_accept_is_replayed() {
    let Some(p) = shared("xep-x3_key_rsa_modp5_aes128.json") else { return };
    let dir = temp_dir("piggy3");
    let mut v = read(&p);
    // Alice's first message (seq 3) travels in her accept (seq 2, §4.6.4).
    assert_eq!(v["xep0200"][0]["seq"], 3);
    let c = c_element(v["xep0200"][0]["send"]["wire"].as_str().unwrap());
    // In the transcript and in its negotiation part, which must agree.
    for list in ["transcript", "negotiation_stanzas"] {
        for t in v[list].as_array_mut().unwrap() {
            if t["seq"] == 2 {
                let x = t["xml"].as_str().unwrap().replace("</message>", &format!("{c}</message>"));
                t["xml"] = Value::String(x);
            }
        }
    }
    v["transcript"].as_array_mut().unwrap().retain(|t| t["seq"] != 3);
    v["xep0200"][0]["seq"] = json!(2);
    v["xep0200"][0]["send"]["in_negotiation_stanza"] = json!(true);
    v["xep0200"][0]["send"]["wire"] = Value::Null;
    let report = check_value(&dir, "v.json", &v);
    assert_clean(&report);
    assert_eq!(report.skipped(), 0, "{report}");
    let lines = text(&report);
    for l in [
        "ok x3_key_rsa_modp5_aes128 step3 alice own stanza 2 reproduced",
        "ok x3_key_rsa_modp5_aes128 step3 alice own stanza 4 reproduced",
        "ok x3_key_rsa_modp5_aes128 step3 bob stanza 2 body",
        "ok x3_key_rsa_modp5_aes128 step3 bob counters when established",
    ] {
        assert!(lines.iter().any(|x| x == l), "missing {l:?}:\n{report}");
    }
}

#[test]
fn gajim_identity_plaintexts_are_compared_padded() {
    // Gajim pads what it encrypts with spaces to the block size: the identity plaintext the
    // vector records is padded, and so is what the checker compares it with.
    let pubkey = "<RSAKeyValue xmlns=\"http://www.w3.org/2000/09/xmldsig#\"><Modulus>AQ==</Modulus><Exponent>Aw==</Exponent></RSAKeyValue>";
    let sig = [1u8, 2, 3];
    let mut plain =
        format!("{pubkey}<SignatureValue xmlns=\"http://www.w3.org/2000/09/xmldsig#\">AQID</SignatureValue>")
            .into_bytes();
    assert_ne!(plain.len() % 16, 0);
    while plain.len() % 16 != 0 {
        plain.push(b' ');
    }
    let v = json!({"name": "pad", "profile": "gajim", "values": {
        "crypt_alg": "aes128-ctr", "modp_group": 5, "hash": "sha256", "mode": 3, "K": "00".repeat(32),
        "init_pubkey": "key", "pubKeyA": hex::encode(pubkey), "signA": hex::encode(sig), "IDA_plaintext": hex::encode(&plain)}});
    let dir = temp_dir("pad");
    let report = check_value(&dir, "pad.json", &v);
    assert!(text(&report).iter().any(|l| l == "ok pad values.IDA_plaintext"), "{report}");
    // The same identity without the Gajim namespace on <SignatureValue/> is another plaintext.
    let mut xep = v.clone();
    let plain_xep = String::from_utf8(plain)
        .unwrap()
        .replace(" xmlns=\"http://www.w3.org/2000/09/xmldsig#\">AQID", ">AQID");
    xep["values"]["IDA_plaintext"] = json!(hex::encode(plain_xep));
    assert_fails(&check_value(&dir, "xep.json", &xep), "values.IDA_plaintext");
}
