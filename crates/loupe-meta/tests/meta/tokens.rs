//! API tokens.

use loupe_meta::Error;
use loupe_model::Role;

use crate::support::open;

#[test]
fn a_token_verifies_to_its_project_and_role() {
    let t = open();
    let (info, secret) = t.store.create_token("vision", Role::Ingest, "ci").unwrap();
    assert!(secret.starts_with("loupe_"));
    assert_eq!(secret.len(), 6 + 52);
    assert!(secret[6..].starts_with(&info.id));
    assert_eq!(info.project, "vision");
    assert_eq!(info.role, Role::Ingest);
    assert_eq!(info.label, "ci");
    assert_eq!(info.last_used, None);

    let verified = t.store.verify_token(&secret).unwrap().expect("valid token");
    assert_eq!(
        (
            verified.id.as_str(),
            verified.project.as_str(),
            verified.role
        ),
        (info.id.as_str(), "vision", Role::Ingest)
    );
    // Creating a token creates its project.
    assert_eq!(t.store.list_projects().unwrap()[0].name, "vision");
}

#[test]
fn each_token_resolves_to_its_own_project_only() {
    let t = open();
    let (a, secret_a) = t.store.create_token("alpha", Role::Admin, "").unwrap();
    let (b, secret_b) = t.store.create_token("beta", Role::Read, "").unwrap();
    assert_ne!(secret_a, secret_b);
    let va = t.store.verify_token(&secret_a).unwrap().unwrap();
    let vb = t.store.verify_token(&secret_b).unwrap().unwrap();
    assert_eq!(
        (va.id, va.project.as_str(), va.role),
        (a.id, "alpha", Role::Admin)
    );
    assert_eq!(
        (vb.id, vb.project.as_str(), vb.role),
        (b.id, "beta", Role::Read)
    );

    let listed: Vec<_> = t
        .store
        .list_tokens("alpha")
        .unwrap()
        .into_iter()
        .map(|i| i.project)
        .collect();
    assert_eq!(listed, vec!["alpha"]);
    assert!(t.store.list_tokens("nobody").unwrap().is_empty());
}

#[test]
fn wrong_malformed_and_revoked_tokens_do_not_verify() {
    let t = open();
    let (info, secret) = t.store.create_token("p", Role::Read, "laptop").unwrap();

    // Same public id, different secret part.
    let mut forged = secret.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'a' { 'b' } else { 'a' });
    let body = &secret[6..];
    let candidates = [
        forged,
        String::new(),
        "loupe_".into(),
        secret[..secret.len() - 1].to_string(),
        format!("{secret}a"),
        secret.to_uppercase(),
        format!("Bearer {secret}"),
        format!("loupe-{body}"),
        format!("loupe_{}", "a".repeat(52)),
        format!(" {secret}"),
    ];
    for bad in candidates {
        assert_eq!(t.store.verify_token(&bad).unwrap(), None, "{bad:?}");
    }
    assert!(t.store.verify_token(&secret).unwrap().is_some());

    // Revoking in another project's name fails and leaves the token working.
    t.store.ensure_project("other").unwrap();
    let err = t.store.revoke_token_in("other", &info.id).unwrap_err();
    assert!(
        matches!(err, Error::NotFound { what: "token", .. }),
        "{err}"
    );
    assert!(t.store.verify_token(&secret).unwrap().is_some());

    t.store.revoke_token_in("p", &info.id).unwrap();
    assert_eq!(t.store.verify_token(&secret).unwrap(), None);
    assert!(t.store.list_tokens("p").unwrap().is_empty());
    assert!(matches!(
        t.store.revoke_token(&info.id),
        Err(Error::NotFound { .. })
    ));

    let (info, secret) = t.store.create_token("p", Role::Read, "").unwrap();
    t.store.revoke_token(&info.id).unwrap();
    assert_eq!(t.store.verify_token(&secret).unwrap(), None);
}

#[test]
fn the_secret_is_never_stored() {
    let t = open();
    let mut secrets = Vec::new();
    for role in [Role::Ingest, Role::Read, Role::Admin] {
        let (info, secret) = t.store.create_token("p", role, "x").unwrap();
        t.store.verify_token(&secret).unwrap().unwrap();
        secrets.push((info.id, secret));
    }
    // Force a checkpoint too, so the main file holds the rows as well as the WAL.
    {
        let conn = rusqlite::Connection::open(t.path()).unwrap();
        conn.query_row("PRAGMA wal_checkpoint(FULL)", [], |_| Ok(()))
            .unwrap();
    }
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(t.dir.path()).unwrap() {
        bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    let contains = |needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
    for (id, secret) in &secrets {
        assert!(
            contains(id),
            "the public id is stored (sanity check of the scan)"
        );
        assert!(!contains(secret), "the full token is in the database files");
        // Not even the part after the public id.
        assert!(!contains(&secret[6 + id.len()..]));
        assert!(!contains(&secret[6 + id.len() + 8..]));
    }
}

#[test]
fn use_is_recorded() {
    let t = open();
    let (info, secret) = t.store.create_token("p", Role::Read, "").unwrap();
    assert_eq!(t.store.list_tokens("p").unwrap()[0].last_used, None);
    t.store.verify_token(&secret).unwrap().unwrap();
    let listed = t.store.list_tokens("p").unwrap();
    let used = listed[0].last_used.expect("last_used recorded");
    assert!(used >= info.created);
    // Within the minute, a second use does not rewrite it.
    let again = t.store.verify_token(&secret).unwrap().unwrap();
    assert_eq!(again.last_used, Some(used));
}

#[test]
fn labels_are_checked() {
    let t = open();
    assert!(matches!(
        t.store.create_token("p", Role::Read, "bad\nlabel"),
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        t.store.create_token("", Role::Read, "x"),
        Err(Error::Invalid(_))
    ));
}
