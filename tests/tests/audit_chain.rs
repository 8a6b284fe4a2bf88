//! The audit log's hash chain end to end: a node writes audit records (watchlist hits) and
//! stops; `yiwang-node verify-audit` finds its chain intact; one record changed in the sled
//! files, or one field changed in an export, is found by the link of the record after it.

use node::audit_chain;
use node::store::{entry_tree, keys, SLED_KEYSPACE};
use proto::{codec, Entry, Kind, NodeId};
use std::path::Path;
use std::process::{Command, Output};
use yiwang_tests::{bin, export, post_json, test_dir, write_config, NodeProcess};

const NODE: &str = "town-audit";
const HITS: usize = 5;

fn verify(config: &Path, export: Option<&Path>) -> Output {
    let mut cmd = Command::new(bin("yiwang-node"));
    cmd.arg("verify-audit").arg("--config").arg(config);
    if let Some(file) = export {
        cmd.arg("--export").arg(file);
    }
    cmd.output().expect("run yiwang-node verify-audit")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn verify_audit_names_the_first_broken_link_in_a_store_and_in_an_export() {
    let dir = test_dir("audit-chain");
    std::fs::write(
        dir.path().join("watchlist.csv"),
        yiwang_tests::watchlist_line("plate", "AUD1T", "stolen", "reported stolen", "officer-test"),
    )
    .unwrap();
    let config = write_config(
        dir.path(),
        NODE,
        "town",
        "[watchlist]\nfile = \"watchlist.csv\"\n[[feeds.checkpoint]]\nname = \"roads\"\nhttp = \"127.0.0.1:0\"\n",
    );
    let node = NodeProcess::start(&config, dir.path());
    for i in 0..HITS {
        let read = format!(
            r#"[{{"data_type":"alpr_group","best_plate_number":"AUD1T","best_confidence":92.5,"checkpoint_id":"cp-7","lane":1,"direction":"in","epoch_start":{}}}]"#,
            1_764_146_400_000u64 + i as u64 * 1000
        );
        let r = post_json(node.feed("roads", "http"), "/ingest", &read).unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
    }
    node.terminate();

    // Intact: the store and its export.
    let out = verify(&config, None);
    assert!(out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("audit chains intact"), "{said}");
    let lines = export(&config, "audit");
    assert!(lines.len() >= HITS, "one audit record per hit at least: {lines:?}");
    assert!(lines.iter().all(|l| l["link"].is_string()), "every record carries its link");
    let exported = dir.path().join("audit.jsonl");
    let write = |lines: &[serde_json::Value]| {
        std::fs::write(&exported, lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap()
    };
    write(&lines);
    let out = verify(&config, Some(&exported));
    assert!(out.status.success(), "{}", text(&out));

    // One field of record 2 changed in the export: record 3's link gives it away.
    let mut changed = lines.clone();
    changed[1]["record"]["why"] = "nothing to see".into();
    write(&changed);
    let out = verify(&config, Some(&exported));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains(&format!("the audit chain of {NODE} is broken at record 3")), "{said}");
    assert!(said.contains("does not match record 2"), "{said}");

    // Record 3 changed in the sled files, its own link left as it was.
    {
        let db = sled::open(dir.path().join("store")).unwrap();
        let tree = db.open_tree(SLED_KEYSPACE).unwrap();
        let key =
            node::store::engine::full_key(entry_tree(Kind::Audit), &keys::entry_key(&NodeId::new(NODE).unwrap(), 3));
        let mut entry: Entry = codec::decode(&tree.get(&key).unwrap().expect("record 3 on disk")).unwrap();
        let (mut record, link) = audit_chain::split(&entry.payload).unwrap();
        record.why = "nothing to see".into();
        entry.payload = audit_chain::payload(&record, &link.expect("a link")).unwrap();
        tree.insert(key, codec::encode(&entry).unwrap()).unwrap();
        db.flush().unwrap();
    }
    let out = verify(&config, None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains(&format!("the audit chain of {NODE} is broken at record 4")), "{said}");
    assert!(said.contains("does not match record 3"), "{said}");
}
