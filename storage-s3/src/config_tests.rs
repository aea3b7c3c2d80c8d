//! The `s3` block's parsing: what it requires, what it refuses, and where the error points.

use super::*;
use serde_json::json;
use std::path::Path;

fn parse_block(fields: serde_json::Value) -> Result<S3Config> {
    let serde_json::Value::Object(map) = fields else {
        panic!("a map")
    };
    let mut block = BlockInput::new("storage.blob", map, Path::new("/base"));
    block.set_role(Role::Blob);
    parse(&mut block)
}

#[test]
fn a_full_block() {
    let c = parse_block(json!({
        "bucket": "b", "endpoint": "http://127.0.0.1:9000", "region": "eu-west-1",
        "accessKeyId": "id", "secretAccessKey": "s3cr3t", "maxBlobBytes": 10
    }))
    .unwrap();
    assert_eq!(c.bucket, "b");
    assert_eq!(c.region, "eu-west-1");
    assert!(c.plain_http());
    assert_eq!(c.limits.max_blob_bytes, Some(10));
    assert_eq!(c.describe(), "http://127.0.0.1:9000 bucket b");
    let id = c.identity().unwrap();
    assert_eq!(id.scope, "b");
    assert!(id.endpoints.contains("127.0.0.1:9000"));
    assert!(!format!("{c:?}").contains("s3cr3t"), "{c:?}");
}

#[test]
fn aws_by_default_over_https() {
    let c = parse_block(json!({"bucket": "b"})).unwrap();
    assert_eq!(c.region, "us-east-1");
    assert!(!c.plain_http());
    assert!(c.identity().unwrap().endpoints.contains("aws:us-east-1"));
    let c = parse_block(json!({"bucket": "b", "endpoint": "https://s3.example.com"})).unwrap();
    assert!(!c.plain_http());
    assert!(
        c.identity()
            .unwrap()
            .endpoints
            .contains("s3.example.com:443")
    );
}

#[test]
fn refusals_name_the_field() {
    let cases = [
        (json!({}), "storage.blob"),
        (json!({"bucket": ""}), "storage.blob.bucket"),
        (
            json!({"bucket": "b", "endpoint": "ftp://x"}),
            "storage.blob.endpoint",
        ),
        (
            json!({"bucket": "b", "endpoint": "not a url"}),
            "storage.blob.endpoint",
        ),
        (
            json!({"bucket": "b", "accessKeyId": "id"}),
            "storage.blob.secretAccessKey",
        ),
        (
            json!({"bucket": "b", "secretAccessKey": "s3cr3t"}),
            "storage.blob.accessKeyId",
        ),
        (json!({"bucket": "b", "colour": 1}), "colour"),
        (
            json!({"bucket": "b", "endpoint": "http://key:s3cr3t@127.0.0.1:9000"}),
            "storage.blob.endpoint: must not hold credentials",
        ),
    ];
    for (fields, expected) in cases {
        let e = parse_block(fields.clone()).unwrap_err();
        assert!(e.to_string().contains(expected), "{fields}: {e}");
        assert!(!e.to_string().contains("s3cr3t"), "{e}");
    }
}
