//! The checker fails on purpose-broken vectors: a changed value is a FAIL, never an ok or a skip.

use super::support::*;
use serde_json::{Value, json};

#[test]
fn a_flipped_k_fails() {
    let dir = temp_dir("flip-k");
    let mut v = read(&gajim_vector());
    flip_hex(&mut v, "/values/K");
    let report = check_value(&dir, "v.json", &v);
    assert_fails(&report, "values.K");
}

#[test]
fn a_flipped_identity_fails() {
    let dir = temp_dir("flip-ida");
    let mut v = read(&gajim_vector());
    flip_hex(&mut v, "/values/IDA");
    let report = check_value(&dir, "v.json", &v);
    assert_fails(&report, "values.IDA");
}

#[test]
fn a_flipped_recorded_wire_stanza_fails_both_as_entry_and_in_the_replay() {
    let dir = temp_dir("flip-wire");
    let mut v = read(&gajim_vector());
    let wire = v.pointer_mut("/xep0200/0/wire").unwrap();
    let text = wire.as_str().unwrap();
    let at = text.find("<data>").unwrap() + "<data>".len();
    let c = &text[at..=at];
    let mut changed = text.to_owned();
    changed.replace_range(at..=at, if c == "A" { "B" } else { "A" });
    *wire = Value::String(changed);
    let report = check_value(&dir, "v.json", &v);
    // Step 4: the receiver's MAC; step 3: Bob refuses the stanza.
    assert_fails(&report, "step4 xep0200[0].recv.verify");
    assert_fails(&report, "step3 bob established");
}

#[test]
fn a_changed_mac_counter_octets_fail_the_sender_mac() {
    // The sender's MAC is taken over the counter octets the entry records: other octets give
    // another MAC (and octets the profile does not allow are refused).
    let dir = temp_dir("mcb");
    let mut v = read(&gajim_vector());
    let mcb = v.pointer_mut("/xep0200/1/send/mac_counter_bytes").unwrap();
    *mcb = Value::String(format!("00{}", mcb.as_str().unwrap()));
    let report = check_value(&dir, "v.json", &v);
    assert_fails(&report, "step4 xep0200[1].send.a_mac");
    assert_fails(&report, "step4 xep0200[1].send.mac_counter_bytes");
}

#[test]
fn a_flipped_signature_fails() {
    let dir = temp_dir("flip-sign");
    let mut v = read(&fixture("xep-off_rsa_terminate.json"));
    flip_hex(&mut v, "/values/signB");
    let report = check_value(&dir, "v.json", &v);
    assert_fails(&report, "values.signB verifies");
    assert_fails(&report, "values.signB re-signed");
}

#[test]
fn a_vector_never_passes_by_skipping() {
    let dir = temp_dir("empty");
    // Nothing to recompute, nothing to replay: FAIL, not a quiet pass.
    let v = json!({"name": "hollow", "profile": "xep", "values": {"crypt_alg": "aes128-ctr", "modp_group": 5, "hash": "sha256"}});
    let report = check_value(&dir, "hollow.json", &v);
    assert_fails(&report, "hollow step1");
    assert_fails(&report, "hollow step3");
    // A file the checker cannot read fails.
    std::fs::write(dir.join("bad.json"), "{").unwrap();
    let report = esession_vectors::check_files(&[dir.join("bad.json"), dir.join("missing.json")]);
    assert_eq!(report.failed(), 2, "{report}");
}

#[test]
fn an_unknown_profile_is_refused() {
    let dir = temp_dir("profile");
    let mut v = read(&gajim_vector());
    v["profile"] = json!("otr");
    let report = check_value(&dir, "v.json", &v);
    assert_eq!(report.failed(), 1, "{report}");
    assert_eq!(report.passed(), 0, "{report}");
}

#[test]
fn a_recorded_rejection_that_does_not_happen_fails() {
    let dir = temp_dir("recorded-error");
    let mut v = read(&gajim_vector());
    v["xep0200"][2]["recv"]["error"] = json!("mac");
    let report = check_value(&dir, "v.json", &v);
    assert_fails(&report, "step4 xep0200[2].recv.rejection");
    assert_fails(&report, "step3 alice stanza 6 accepted");
}
