//! Headless Chromium: a page served by the website endpoint uploads files to another bucket,
//! (a) with `fetch()` PUT to a presigned URL (CORS preflight and exposed ETag), and (b) with
//! an HTML POST form whose policy fields come from boto3 `generate_presigned_post`, submitted
//! by script into an iframe and redirected back to the site. The page writes both outcomes
//! into its DOM; the objects are then read back with aws-sdk-s3.

use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use cluster_tests::bucket_config::{cors_rule, put_cors, put_website_index};
use cluster_tests::post_form::{PostTarget, boto3_presigned_post};
use cluster_tests::{
    Server, ServerOptions, dump_dom, get_bytes, head_object, map_host, new_bucket,
};
use serde_json::json;

/// `--web-root-domain` of the test server.
const WEB_ROOT: &str = "web.test";

async fn put_html(s3: &Client, bucket: &str, key: &str, html: String) {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .content_type("text/html")
        .body(ByteStream::from(html.into_bytes()))
        .send()
        .await
        .unwrap();
}

async fn read(s3: &Client, bucket: &str, key: &str) -> String {
    String::from_utf8_lossy(&get_bytes(s3, bucket, key).await).into_owned()
}

#[tokio::test]
async fn website_page_uploads_with_fetch_and_post_form() {
    cluster_tests::require_chromium();
    let server = Server::start_with(ServerOptions {
        extra_args: vec!["--web-root-domain".into(), WEB_ROOT.into()],
        ..Default::default()
    });
    let s3 = server.client();
    let site = new_bucket(&s3, "site").await;
    let uploads = new_bucket(&s3, "uploads").await;
    let origin = format!("http://{site}.{WEB_ROOT}");
    put_website_index(&s3, &site, "index.html").await;
    let mut rule = cors_rule(&[&origin], &["PUT", "POST", "GET"], &["*"]);
    rule.expose_headers = Some(vec!["ETag".into()]);
    put_cors(&s3, &uploads, vec![rule]).await;

    let put_url = s3
        .put_object()
        .bucket(&uploads)
        .key("from-fetch.txt")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(600)).unwrap())
        .await
        .unwrap()
        .uri()
        .to_string();
    let done = format!("{origin}/done.html");
    let endpoint = server.s3_url();
    let form = boto3_presigned_post(
        &server,
        PostTarget {
            endpoint: &endpoint,
            style: "path",
            bucket: &uploads,
            key: "form/${filename}",
        },
        &json!({"success_action_redirect": done, "Content-Type": "text/plain"}),
        &json!([{"success_action_redirect": done}, {"Content-Type": "text/plain"},
                ["content-length-range", 1, 1024]]),
        600,
    );
    let inputs: String = form
        .fields
        .iter()
        .map(|(name, value)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">\n",
                html_escape(name),
                html_escape(value)
            )
        })
        .collect();
    let page = format!(
        r#"<!doctype html>
<html><head><title>upload</title></head><body>
<p id="fetch">fetch: pending</p>
<p id="form">form: pending</p>
<form id="f" method="POST" enctype="multipart/form-data" target="sink" action="{action}">
{inputs}<input type="file" name="file" id="file">
</form>
<iframe name="sink" id="sink"></iframe>
<script>
const show = (id, text) => {{ document.getElementById(id).textContent = text; }};
fetch({put_url}, {{method: "PUT", body: "hello from fetch", headers: {{"Content-Type": "text/plain"}}}})
  .then(r => show("fetch", "fetch: " + r.status + " etag=" + r.headers.get("ETag")))
  .catch(e => show("fetch", "fetch: error " + e));
const sink = document.getElementById("sink");
sink.addEventListener("load", () => {{
  try {{
    const loc = sink.contentWindow.location;
    if (loc.pathname === "/done.html") show("form", "form: done " + loc.search);
  }} catch (e) {{ show("form", "form: unreadable " + e); }}
}});
const data = new DataTransfer();
data.items.add(new File(["hello from form"], "note.txt", {{type: "text/plain"}}));
document.getElementById("file").files = data.files;
document.getElementById("f").submit();
</script>
</body></html>
"#,
        action = html_escape(&form.url),
        put_url = serde_json::to_string(&put_url).unwrap(),
    );
    put_html(&s3, &site, "index.html", page).await;
    put_html(&s3, &site, "done.html", "<p>uploaded</p>".into()).await;

    let rules = map_host(&format!("*.{WEB_ROOT}"), server.addrs().web.unwrap());
    let dom = dump_dom(&format!("{origin}/"), Some(&rules));
    let fetch_line = dom
        .lines()
        .find(|l| l.contains("id=\"fetch\""))
        .unwrap_or_default();
    assert!(
        fetch_line.contains("fetch: 200 etag=\""),
        "the fetch() PUT did not succeed with a readable ETag:\n{dom}"
    );
    let form_line = dom
        .lines()
        .find(|l| l.contains("id=\"form\""))
        .unwrap_or_default();
    assert!(
        form_line.contains("form: done ?bucket=") && form_line.contains("key=form%2Fnote.txt"),
        "the POST form did not redirect back to the site:\n{dom}"
    );

    assert_eq!(
        read(&s3, &uploads, "from-fetch.txt").await,
        "hello from fetch"
    );
    assert_eq!(
        read(&s3, &uploads, "form/note.txt").await,
        "hello from form"
    );
    let head = head_object(&s3, &uploads, "form/note.txt").await;
    assert_eq!(head.content_type(), Some("text/plain"));
}

/// Escapes text for an HTML attribute value.
fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
