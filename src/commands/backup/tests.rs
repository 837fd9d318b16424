//! The walker's decisions, path normalisation, and a backup on a
//! one-thread runtime.

use super::walker::{reusable_content, synthetic_dir};
use super::*;

fn file(size: u64, mtime_ns: i64, content: Vec<BlobId>) -> Node {
    Node {
        kind: NodeKind::File,
        mode: 0o100644,
        size,
        mtime_ns,
        ctime_ns: mtime_ns,
        inode: 7,
        content,
        ..synthetic_dir(b"f")
    }
}

#[test]
fn an_unchanged_file_reuses_its_chunks_only_while_they_are_stored() {
    let a = BlobId([1; 32]);
    let b = BlobId([2; 32]);
    let old = file(10, 100, vec![a, b]);
    let now = file(10, 100, Vec::new());
    assert_eq!(
        reusable_content(&now, Some(&old), |_| true),
        Some(vec![a, b])
    );
    // A chunk that prune removed (or a damaged index) means read again.
    assert_eq!(reusable_content(&now, Some(&old), |id| *id == a), None);
    // No parent, or a parent entry that is not this file as it was.
    assert_eq!(reusable_content(&now, None, |_| true), None);
    for changed in [
        file(11, 100, Vec::new()),
        file(10, 101, Vec::new()),
        Node {
            inode: 8,
            ..file(10, 100, Vec::new())
        },
    ] {
        assert_eq!(reusable_content(&changed, Some(&old), |_| true), None);
    }
    let dir = synthetic_dir(b"f");
    assert_eq!(reusable_content(&now, Some(&dir), |_| true), None);
    // A non-empty file recorded with no content is never trusted.
    assert_eq!(
        reusable_content(&now, Some(&file(10, 100, Vec::new())), |_| true),
        None
    );
    // An empty file has no chunks to reuse, and needs none.
    let empty = file(0, 5, Vec::new());
    assert_eq!(
        reusable_content(&empty, Some(&empty), |_| false),
        Some(vec![])
    );
}

#[test]
fn paths_are_made_absolute_sorted_deduplicated_and_must_not_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    std::fs::create_dir_all(a.join("inner")).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let got = normalize_paths(&[b.clone(), a.join("inner/.."), a.clone()]).unwrap();
    assert_eq!(got, [a.clone(), b.clone()]);
    let e = normalize_paths(&[a.clone(), a.join("inner")]).unwrap_err();
    assert!(e.to_string().contains("paths overlap"), "{e}");
    let e = normalize_paths(&[dir.path().join("missing")]).unwrap_err();
    assert!(e.to_string().contains("no such file"), "{e}");
    assert!(matches!(normalize_paths(&[]), Err(Error::Usage(_))));
}

/// The runtime a caller brings may have one thread: the backup must not
/// need a second one to make progress.
#[tokio::test(flavor = "current_thread")]
async fn a_backup_runs_on_a_current_thread_runtime() {
    let repo = crate::repository::test_repository("backup-current-thread").await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), vec![7u8; 3 << 20]).unwrap();
    let r = backup(
        &repo,
        BackupOptions {
            paths: vec![dir.path().to_path_buf()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(r.snapshot.summary.files, 1);
    assert!(r.snapshot.summary.errors.is_empty());
}
