#!/usr/bin/env python3
"""Prepares a fresh moto server as UFRECS's S3/STS: an operator user allowed
sts:AssumeRole, a role the reporters' sessions assume, the media bucket; then turns
SigV4/IAM checking on. Prints the operator key, the role ARN and the replication user's
key (put, get, list on replica folders; no delete) as JSON.

    moto_setup.py ENDPOINT BUCKET [ROLE_RESOURCE ...]

ROLE_RESOURCE: key patterns the role itself allows (moto enforces the role's policy but
not the inline session policy, so tests narrow the role to prove the upload path).
Default: the whole bucket."""
import json
import sys
import urllib.request

import boto3

endpoint, bucket = sys.argv[1], sys.argv[2]
resources = sys.argv[3:] or [f"arn:aws:s3:::{bucket}/*"]
# Before auth is on, any key will do for the set-up calls.
kw = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="AKIASETUP0000000000", aws_secret_access_key="setup")
iam = boto3.client("iam", **kw)


def user(name, statements):
    """An IAM user allowed `statements`; returns its access key."""
    iam.create_user(UserName=name)
    access_key = iam.create_access_key(UserName=name)["AccessKey"]
    iam.put_user_policy(UserName=name, PolicyName=name,
                        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}))
    return access_key


key = user("ufrecs-operator", [{"Effect": "Allow", "Action": ["sts:AssumeRole", "s3:*"], "Resource": "*"}])
trust = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]}
role = iam.create_role(RoleName="ufrecs-uploader", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
iam.put_role_policy(
    RoleName="ufrecs-uploader",
    PolicyName="uploads",
    PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
         "Resource": resources},
        {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": f"arn:aws:s3:::{bucket}"}]}),
)
# The replication user (Litestream's key): put, get and list on replica folders, no delete.
replica_key = user("ufrecs-replicator", [
    {"Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload",
                                   "s3:ListMultipartUploadParts"],
     "Resource": f"arn:aws:s3:::{bucket}/*replica/*"},
    {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": f"arn:aws:s3:::{bucket}"}])
s3 = boto3.client("s3", **kw)
s3.create_bucket(Bucket=bucket)
# Versioning on: a PUT over an existing key (a seized box's replication key may put) keeps
# the earlier version.
s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset-auth", data=b"0", headers={"Content-Type": "text/plain"}))
print(json.dumps({"access_key": key["AccessKeyId"], "secret_key": key["SecretAccessKey"], "role_arn": role,
                  "replica_access_key": replica_key["AccessKeyId"],
                  "replica_secret_key": replica_key["SecretAccessKey"]}))
