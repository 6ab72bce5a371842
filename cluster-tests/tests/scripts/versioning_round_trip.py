"""boto3 versioning round trip against a Cairn gateway, in phases so a test can kill nodes
between them: `write`, `delete`, `check`. State (version ids) is kept in a JSON file.

usage: versioning_round_trip.py ENDPOINT BUCKET PHASE STATE_FILE
"""
import json
import sys

import boto3
import urllib3
from botocore.config import Config
from botocore.exceptions import ClientError

endpoint, bucket, phase, state_file = sys.argv[1:5]
s3 = boto3.client(
    "s3",
    endpoint_url=endpoint,
    region_name="us-east-1",
    config=Config(
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        retries={"max_attempts": 8, "mode": "standard"},
    ),
)
KEY = "doc.txt"


def body(version_id=None, key=KEY):
    args = {"Bucket": bucket, "Key": key}
    if version_id:
        args["VersionId"] = version_id
    return s3.get_object(**args)["Body"].read().decode()


def error_of(call, **args):
    try:
        call(Bucket=bucket, **args)
    except ClientError as e:
        return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPHeaders"]
    raise AssertionError(f"{call.__name__} {args} succeeded")


def versions(key=KEY):
    out = s3.list_object_versions(Bucket=bucket, Prefix=key)
    vs = [(v["VersionId"], v["IsLatest"]) for v in out.get("Versions", []) if v["Key"] == key]
    ms = [(m["VersionId"], m["IsLatest"]) for m in out.get("DeleteMarkers", []) if m["Key"] == key]
    return vs, ms


def load():
    with open(state_file) as f:
        return json.load(f)


if phase == "write":
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    ids = []
    for i in (1, 2, 3):
        out = s3.put_object(Bucket=bucket, Key=KEY, Body=f"v{i}".encode())
        ids.append(out["VersionId"])
    assert len(set(ids)) == 3 and "null" not in ids, ids
    vs, ms = versions()
    assert vs == [(ids[2], True), (ids[1], False), (ids[0], False)], vs
    assert ms == [], ms
    for i, vid in enumerate(ids, 1):
        assert body(vid) == f"v{i}"
        head = s3.head_object(Bucket=bucket, Key=KEY, VersionId=vid)
        assert head["VersionId"] == vid
    assert body() == "v3"
    # A browser-form upload (POST policy) makes a version too, and says which.
    post = s3.generate_presigned_post(bucket, "posted.txt")
    fields = dict(post["fields"])
    fields["file"] = ("posted.txt", b"posted")
    answer = urllib3.PoolManager().request("POST", post["url"], fields=fields)
    assert answer.status == 204, (answer.status, answer.data)
    posted = answer.headers.get("x-amz-version-id")
    assert posted and posted != "null", dict(answer.headers)
    assert body(posted, key="posted.txt") == "posted"
    s3.delete_object(Bucket=bucket, Key="posted.txt", VersionId=posted)
    assert versions("posted.txt") == ([], [])
    with open(state_file, "w") as f:
        json.dump({"ids": ids}, f)

elif phase == "delete":
    ids = load()["ids"]
    out = s3.delete_object(Bucket=bucket, Key=KEY)
    assert out["DeleteMarker"] is True
    marker = out["VersionId"]
    assert marker not in ids
    code, headers = error_of(s3.get_object, Key=KEY)
    assert code == "NoSuchKey" and headers.get("x-amz-delete-marker") == "true", (code, headers)
    code, headers = error_of(s3.get_object, Key=KEY, VersionId=marker)
    assert code == "MethodNotAllowed", code
    vs, ms = versions()
    assert ms == [(marker, True)], ms
    assert vs == [(ids[2], False), (ids[1], False), (ids[0], False)], vs
    listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    assert KEY not in [o["Key"] for o in listed]
    # Deleting the marker brings v3 back.
    out = s3.delete_object(Bucket=bucket, Key=KEY, VersionId=marker)
    assert out["DeleteMarker"] is True and out["VersionId"] == marker
    assert body() == "v3"
    # Deleting v2 by id removes exactly it.
    out = s3.delete_object(Bucket=bucket, Key=KEY, VersionId=ids[1])
    assert out["VersionId"] == ids[1]
    assert error_of(s3.get_object, Key=KEY, VersionId=ids[1])[0] == "NoSuchVersion"
    vs, ms = versions()
    assert vs == [(ids[2], True), (ids[0], False)] and ms == [], (vs, ms)
    # A copy of an older version.
    out = s3.copy_object(Bucket=bucket, Key="copy.txt",
                         CopySource={"Bucket": bucket, "Key": KEY, "VersionId": ids[0]})
    assert out["CopySourceVersionId"] == ids[0]
    assert body(key="copy.txt") == "v1"
    # DeleteObjects with and without a version id.
    first = s3.put_object(Bucket=bucket, Key="batch", Body=b"b1")["VersionId"]
    second = s3.put_object(Bucket=bucket, Key="batch", Body=b"b2")["VersionId"]
    out = s3.delete_objects(Bucket=bucket, Delete={"Objects": [
        {"Key": "batch", "VersionId": first}]})
    assert out["Deleted"][0]["VersionId"] == first, out
    out = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "batch"}]})
    made = out["Deleted"][0]
    assert made["DeleteMarker"] is True and made["DeleteMarkerVersionId"], made
    vs, ms = versions("batch")
    assert vs == [(second, False)] and ms == [(made["DeleteMarkerVersionId"], True)], (vs, ms)
    # Suspended: writes make the null version, each replacing the previous one.
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Suspended"
    assert s3.put_object(Bucket=bucket, Key=KEY, Body=b"n1")["VersionId"] == "null"
    assert s3.put_object(Bucket=bucket, Key=KEY, Body=b"n2")["VersionId"] == "null"
    vs, ms = versions()
    assert vs == [("null", True), (ids[2], False), (ids[0], False)], vs
    assert body() == "n2" and body("null") == "n2"
    # A delete while suspended is a null delete marker replacing the null version.
    out = s3.delete_object(Bucket=bucket, Key=KEY)
    assert out["DeleteMarker"] is True and out["VersionId"] == "null", out

elif phase == "check":
    ids = load()["ids"]
    vs, ms = versions()
    assert vs == [(ids[2], False), (ids[0], False)], vs
    assert ms == [("null", True)], ms
    assert error_of(s3.get_object, Key=KEY)[0] == "NoSuchKey"
    assert body(ids[2]) == "v3" and body(ids[0]) == "v1"
    assert error_of(s3.get_object, Key=KEY, VersionId=ids[1])[0] == "NoSuchVersion"
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert listed == ["copy.txt"], listed
    # Paging through versions one entry at a time sees the same entries.
    seen, args = [], {"Bucket": bucket, "MaxKeys": 1}
    while True:
        out = s3.list_object_versions(**args)
        seen += [(v["Key"], v["VersionId"]) for v in out.get("Versions", [])]
        seen += [(m["Key"], m["VersionId"]) for m in out.get("DeleteMarkers", [])]
        if not out["IsTruncated"]:
            break
        args.update(KeyMarker=out["NextKeyMarker"], VersionIdMarker=out["NextVersionIdMarker"])
    whole = s3.list_object_versions(Bucket=bucket)
    expected = [(v["Key"], v["VersionId"]) for v in whole.get("Versions", [])]
    expected += [(m["Key"], m["VersionId"]) for m in whole.get("DeleteMarkers", [])]
    assert sorted(seen) == sorted(expected) and len(seen) == len(set(seen)), (seen, expected)
    assert len(expected) == 6, expected  # doc: v3 v1 marker; copy; batch: b2 marker
    # A delimiter rolls keys up into common prefixes, versions and markers alike.
    out = s3.list_object_versions(Bucket=bucket, Delimiter=".")
    assert [p["Prefix"] for p in out.get("CommonPrefixes", [])] == ["copy.", "doc."], out
    assert {v["Key"] for v in out.get("Versions", [])} == {"batch"}, out
    assert {m["Key"] for m in out.get("DeleteMarkers", [])} == {"batch"}, out

else:
    raise SystemExit(f"unknown phase {phase}")
print("OK", phase)
