//! Batch dry runs: a pasted list of 1,000 addresses previewed, then sent,
//! and the rate allowance a preview spends.

use std::time::Duration;

use super::*;

on_both_databases!(a_dry_run_batch_of_a_thousand_addresses_partitions_them_as_the_real_batch_does);

/// 1,000 addresses: 800 new, then 50 already invited (spaced), 50 invalid,
/// 50 repeating new ones in another case, 50 repeating invited ones.
fn thousand_addresses() -> Vec<String> {
    let new = (0..800).map(|n| format!("new{n}@example.org"));
    let invited = (0..50).map(|n| format!(" old{n}@example.org "));
    let invalid = (0..50).map(|n| format!("bad{n}@example"));
    let new_again = (0..50).map(|n| format!("NEW{n}@Example.org"));
    let invited_again = (0..50).map(|n| format!("OLD{n}@example.org"));
    new.chain(invited)
        .chain(invalid)
        .chain(new_again)
        .chain(invited_again)
        .collect()
}

async fn a_dry_run_batch_of_a_thousand_addresses_partitions_them_as_the_real_batch_does(db: Db) {
    let app = spawn_app(db).await;
    let mut events = Events::bind(&app.exchange).await;
    let mut client = app.client().await;
    let batch = |emails: Vec<String>| pb::BatchCreateInvitesRequest {
        target_type: "account_group".into(),
        target_id: "grp-1".into(),
        emails,
        expires_at: Some(timestamp_in(chrono::Duration::days(30))),
        notify: true,
        ..Default::default()
    };
    // Invited by an admin, whose creates no rate limit counts.
    let admin = token("svc-admin", None, true);
    let earlier = batch((0..50).map(|n| format!("old{n}@example.org")).collect());
    client
        .batch_create_invites(authed(earlier, &admin))
        .await
        .unwrap();
    assert_eq!(events.take(50).await.len(), 50);
    let alice = token("alice", None, false);
    let request = pb::BatchCreateInvitesRequest {
        request_id: KEY.into(),
        ..batch(thousand_addresses())
    };

    let preview = client
        .batch_create_invites(authed(as_dry_batch(&request), &alice))
        .await
        .unwrap()
        .into_inner();

    let emails = |created: &[pb::CreatedInvite]| -> Vec<String> {
        created
            .iter()
            .map(|c| match &c.invite.as_ref().unwrap().invitee {
                Some(pb::invite::Invitee::InviteeEmail(email)) => email.clone(),
                other => panic!("{other:?}"),
            })
            .collect()
    };
    let expected_created: Vec<_> = (0..800).map(|n| format!("new{n}@example.org")).collect();
    assert_eq!(emails(&preview.created), expected_created);
    for created in &preview.created {
        assert!(created.token.is_empty() && created.invite.as_ref().unwrap().id.is_empty());
    }
    let addresses = thousand_addresses();
    let expected_invalid: Vec<_> = (800..1000)
        .map(|at| pb::InvalidEmail {
            // As given; an address already invited is a valid one, trimmed.
            email: addresses[at].trim().to_owned(),
            reason: match at {
                800..850 => "ALREADY_INVITED",
                850..900 => "INVALID_EMAIL",
                _ => "DUPLICATE_IN_REQUEST",
            }
            .into(),
        })
        .collect();
    assert_eq!(preview.invalid, expected_invalid);
    assert_eq!(stored_rows(&app.database_url).await, [50, 50, 0]);
    events.assert_no_more(Duration::from_millis(500)).await;

    // Sent for real, with the same key: not replayed, not rate limited.
    let real = client
        .batch_create_invites(authed(request, &alice))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(real.invalid, preview.invalid);
    let made: Vec<_> = real
        .created
        .iter()
        .map(|c| without_what_the_write_made(c.invite.as_ref().unwrap()))
        .collect();
    let shown: Vec<_> = preview
        .created
        .iter()
        .map(|c| c.invite.clone().unwrap())
        .collect();
    assert_eq!(made, shown);
    assert!(real.created.iter().all(|c| !c.token.is_empty()));
    events.delete_exchange().await;
    app.stop().await;
}

/// Dry runs spend an allowance of their own: previewing a list leaves what
/// sending it needs. A batch no allowance fits is refused alike.
#[tokio::test]
async fn a_dry_run_spends_its_own_rate_allowance_not_the_real_calls() {
    use tonic_types::StatusExt as _;
    let mut options = Options::fresh(Db::Sqlite).await;
    options.flags = vec!["--create-rate-limit".into(), "3".into()];
    let app = TestApp::start(options).await;
    let mut client = app.client().await;
    let alice = token("alice", None, false);
    let batch = |emails: &[&str]| pb::BatchCreateInvitesRequest {
        target_type: "account_group".into(),
        target_id: "grp-1".into(),
        emails: emails.iter().map(|e| e.to_string()).collect(),
        ..Default::default()
    };

    let [too_big, real_too_big] = both_refused_batch(
        &app,
        batch(&["a@x.org", "b@x.org", "c@x.org", "d@x.org"]),
        &alice,
    )
    .await;
    let three = batch(&["a@x.org", "b@x.org", "c@x.org"]);
    let preview = client
        .batch_create_invites(authed(as_dry_batch(&three), &alice))
        .await
        .unwrap()
        .into_inner();
    let sent = client
        .batch_create_invites(authed(three, &alice))
        .await
        .unwrap()
        .into_inner();
    let spent = client
        .create_invite(authed(
            as_dry_run(&email_invite("org-1", "e@x.org")),
            &alice,
        ))
        .await
        .unwrap_err();

    assert_eq!(bad_fields(&too_big), ["emails"]);
    assert_eq!(refusal(&too_big), refusal(&real_too_big));
    assert_eq!((preview.created.len(), sent.created.len()), (3, 3));
    assert_eq!(spent.code(), Code::ResourceExhausted);
    assert_eq!(reason(&spent), "RATE_LIMITED");
    assert!(spent.get_error_details().retry_info().is_some());
    app.stop().await;
}
