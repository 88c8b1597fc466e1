//! The inline session policy a reporter's credentials carry (spec section 8): put and
//! multipart uploads under the reporter's own key prefix, listing only that prefix,
//! nothing else: no read, no delete, so evidence can neither be read back nor erased
//! with these keys. Built with serde_json from validated identifiers only.

use serde_json::{json, Value};

/// `bucket` and `key_prefix` come from validated settings and identifiers (no `*`, `?`,
/// `/` inside an identifier, no `..`), so the policy can never be widened by input.
pub fn session_policy(bucket: &str, key_prefix: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
                "Resource": [format!("arn:aws:s3:::{bucket}/{key_prefix}*")],
            },
            {
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": [format!("arn:aws:s3:::{bucket}")],
                "Condition": {"StringLike": {"s3:prefix": [format!("{key_prefix}*")]}},
            },
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_uploads_and_listing_under_the_sources_prefix_only() {
        let p = session_policy("ufrecs-media", "media/PO-001/source-02-12/");
        assert_eq!(
            p,
            json!({
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow",
                     "Action": ["s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
                     "Resource": ["arn:aws:s3:::ufrecs-media/media/PO-001/source-02-12/*"]},
                    {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": ["arn:aws:s3:::ufrecs-media"],
                     "Condition": {"StringLike": {"s3:prefix": ["media/PO-001/source-02-12/*"]}}}
                ]
            })
        );
        let text = p.to_string();
        for forbidden in ["GetObject", "DeleteObject", "s3:*", "\"*\""] {
            assert!(!text.contains(forbidden), "{forbidden}");
        }
    }
}
