//! Bucket operations: ListBuckets, CreateBucket (valid, invalid, repeated), HeadBucket,
//! GetBucketLocation, DeleteBucket.

use cluster_tests::{
    Server, delete_object, expect_s3_error, head_object, new_bucket, put_bytes, unique_bucket,
};

fn server() -> &'static Server {
    Server::shared()
}

#[tokio::test]
async fn create_list_head_delete() {
    let s3 = server().client();
    let bucket = unique_bucket("buckets");

    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let listed = s3.list_buckets().send().await.unwrap();
    let found = listed
        .buckets()
        .iter()
        .find(|b| b.name() == Some(bucket.as_str()))
        .unwrap_or_else(|| panic!("{bucket} missing from ListBuckets: {listed:?}"));
    let created = found.creation_date().expect("CreationDate");
    let now = aws_smithy_types::DateTime::from(std::time::SystemTime::now());
    assert!(
        (now.secs() - created.secs()).abs() < 600,
        "CreationDate {created} is not close to now {now}"
    );

    s3.head_bucket().bucket(&bucket).send().await.unwrap();

    s3.delete_bucket().bucket(&bucket).send().await.unwrap();
    expect_s3_error(
        "HeadBucket after delete",
        s3.head_bucket().bucket(&bucket).send().await,
        404,
        None,
    );
    let listed = s3.list_buckets().send().await.unwrap();
    assert!(
        !listed
            .buckets()
            .iter()
            .any(|b| b.name() == Some(bucket.as_str())),
        "deleted bucket still listed: {listed:?}"
    );
    // The name can be used again.
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    s3.head_bucket().bucket(&bucket).send().await.unwrap();
    s3.delete_bucket().bucket(&bucket).send().await.unwrap();
}

#[tokio::test]
async fn create_twice_is_already_owned_by_you() {
    let s3 = server().client();
    let bucket = unique_bucket("twice");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    expect_s3_error(
        "second CreateBucket",
        s3.create_bucket().bucket(&bucket).send().await,
        409,
        Some("BucketAlreadyOwnedByYou"),
    );
    s3.head_bucket().bucket(&bucket).send().await.unwrap();
}

#[tokio::test]
async fn invalid_bucket_names() {
    let s3 = server().client();
    let long = "a".repeat(64);
    for name in [
        "ab",
        "UPPER",
        "-bad",
        "bad-",
        "a..b",
        "under_score",
        long.as_str(),
        "192.168.1.1",
    ] {
        expect_s3_error(
            &format!("CreateBucket {name:?}"),
            s3.create_bucket().bucket(name).send().await,
            400,
            Some("InvalidBucketName"),
        );
    }
    // The limits themselves are valid: 3 and 63 characters.
    let three = format!("{:03x}", rand::random::<u16>() % 0xfff);
    let sixty_three = format!("{}{}", "b".repeat(55), &unique_bucket("x")[2..]);
    assert_eq!(sixty_three.len(), 63);
    for name in [three.as_str(), sixty_three.as_str()] {
        s3.create_bucket()
            .bucket(name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("CreateBucket {name:?}: {e:?}"));
        s3.delete_bucket().bucket(name).send().await.unwrap();
    }
}

#[tokio::test]
async fn head_missing_bucket_is_404() {
    let s3 = server().client();
    let missing = unique_bucket("missing");
    expect_s3_error(
        "HeadBucket missing",
        s3.head_bucket().bucket(&missing).send().await,
        404,
        None,
    );
}

#[tokio::test]
async fn get_bucket_location() {
    let s3 = server().client();
    let bucket = new_bucket(&s3, "location").await;
    let out = s3
        .get_bucket_location()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    // AWS answers an empty LocationConstraint for us-east-1; the region name is accepted too.
    let loc = out.location_constraint().map(|l| l.as_str()).unwrap_or("");
    assert!(
        loc.is_empty() || loc == "us-east-1",
        "unexpected LocationConstraint {loc:?}"
    );
    let missing = unique_bucket("missing");
    expect_s3_error(
        "GetBucketLocation missing",
        s3.get_bucket_location().bucket(&missing).send().await,
        404,
        Some("NoSuchBucket"),
    );
}

#[tokio::test]
async fn delete_bucket_errors() {
    let s3 = server().client();
    let missing = unique_bucket("missing");
    expect_s3_error(
        "DeleteBucket missing",
        s3.delete_bucket().bucket(&missing).send().await,
        404,
        Some("NoSuchBucket"),
    );

    let bucket = new_bucket(&s3, "notempty").await;
    put_bytes(&s3, &bucket, "k", b"x").await;
    expect_s3_error(
        "DeleteBucket non-empty",
        s3.delete_bucket().bucket(&bucket).send().await,
        409,
        Some("BucketNotEmpty"),
    );
    // Still there with its object.
    head_object(&s3, &bucket, "k").await;
    delete_object(&s3, &bucket, "k").await;
    s3.delete_bucket().bucket(&bucket).send().await.unwrap();
    expect_s3_error(
        "HeadBucket after delete",
        s3.head_bucket().bucket(&bucket).send().await,
        404,
        None,
    );
}
