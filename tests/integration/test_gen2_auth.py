"""Gen2 emulator authentication (protocols.md §3): Shared Key in both canonicalizations real SDKs use,
the x-ms-date window, service and account SAS (signature, time window, permissions, scope), and bearer
tokens from the emulator's own OAuth2 client-credentials (v1, v2) and IMDS endpoints, including expiry
and audience checks. Secrets must never reach the emulator's log or its error bodies."""
import base64
import datetime
import hashlib
import hmac
import json
import time
import urllib.parse

import emulib

A = "/" + emulib.DEV_ACCOUNT
CLIENT_ID = "11111111-aaaa-4bbb-8ccc-222222222222"
CLIENT_SECRET = "s3cr3t-Value~with.chars"
OTHER_KEY = base64.b64encode(bytes(range(64))).decode()


def now_rfc1123(delta_s=0):
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=delta_s)
    return t.strftime("%a, %d %b %Y %H:%M:%S GMT")


def iso(delta_s):
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=delta_s)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def account_sas(account, key, sp, ss, srt, start, expiry, sv="2021-06-08"):
    fields = [account, sp, ss, srt, start, expiry, "", "", sv, ""]
    sts = "\n".join(fields) + "\n"
    sig = base64.b64encode(hmac.new(base64.b64decode(key), sts.encode(), hashlib.sha256).digest()).decode()
    return urllib.parse.urlencode([("sv", sv), ("ss", ss), ("srt", srt), ("sp", sp), ("st", start),
                                   ("se", expiry), ("sig", sig)])


def err(r):
    return r.header("x-ms-error-code")


class AuthTests(emulib.EmuTestCase):
    EMUS = {
        "g": dict(service="gen2", extra_args=["--oauth-client-id", CLIENT_ID, "--log-level", "debug"],
                  env={"DUALPIPE_EMU_CLIENT_SECRET": CLIENT_SECRET}),
        "short": dict(service="gen2", extra_args=["--token-ttl", "1"]),
    }

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        e = cls.emus["g"]
        for fs in ("authfs", "sasfs"):
            r = e.gen2("PUT", "%s/%s?resource=filesystem" % (A, fs))
            assert r.status == 201, r

    @property
    def e(self):
        return self.emus["g"]

    def token(self, v2=False, resource="https://storage.azure.com/", secret=CLIENT_SECRET, client=CLIENT_ID,
              emu=None, tenant="contoso.onmicrosoft.com"):
        form = {"grant_type": "client_credentials", "client_id": client, "client_secret": secret}
        if v2:
            form["scope"] = resource.rstrip("/") + "/.default"
        else:
            form["resource"] = resource
        path = "/%s/oauth2/%stoken" % (tenant, "v2.0/" if v2 else "")
        return emulib.http_request((emu or self.e).url, "POST", path, urllib.parse.urlencode(form),
                                   {"Content-Type": "application/x-www-form-urlencoded"})

    # ---- Shared Key ----
    def test_both_canonicalizations(self):
        # an empty-valued query parameter: the JS SDK leaves it out of the string to sign, the Python
        # SDK signs "include:"; both must be accepted
        for keep in (False, True):
            r = self.e.gen2("GET", A + "/?comp=list&include=", keep_empty=keep)
            self.assertEqual(r.status, 200, (keep, r))
        for keep in (False, True):
            r = self.e.gen2("GET", A + "/authfs?resource=filesystem&recursive=true&upn=", keep_empty=keep)
            self.assertEqual(r.status, 200, (keep, r))

    def test_wrong_key_and_tampering(self):
        r = self.e.gen2("GET", A + "/authfs?resource=filesystem&recursive=true", auth="key:" + OTHER_KEY)
        self.assertEqual((r.status, err(r)), (403, "AuthenticationFailed"))
        msg = r.json()["error"]["message"]
        self.assertIn("is not the same as any computed signature. Server used following string to sign: 'GET\n",
                      msg)
        self.assertIn("/devstoreaccount1/devstoreaccount1/authfs\nrecursive:true\nresource:filesystem'", msg)
        self.assertNotIn(emulib.DEV_KEY, r.body.decode())
        # signed for one query, sent with another
        hdrs = {"x-ms-version": emulib.X_MS_VERSION, "x-ms-date": now_rfc1123()}
        hdrs["Authorization"] = emulib.shared_key_auth(emulib.DEV_ACCOUNT, emulib.DEV_KEY, "GET",
                                                       A + "/authfs?resource=filesystem&recursive=false", hdrs, 0)
        r = emulib.http_request(self.e.url, "GET", A + "/authfs?resource=filesystem&recursive=true", None, hdrs)
        self.assertEqual((r.status, err(r)), (403, "AuthenticationFailed"))
        # another account name in the header
        hdrs["Authorization"] = "SharedKey otheraccount:" + hdrs["Authorization"].split(":", 1)[1]
        r = emulib.http_request(self.e.url, "GET", A + "/authfs?resource=filesystem&recursive=false", None, hdrs)
        self.assertEqual(r.status, 403)
        for bad in ("SharedKey nocolon", "SharedKey devstoreaccount1:"):
            hdrs["Authorization"] = bad
            r = emulib.http_request(self.e.url, "GET", A + "/authfs?resource=filesystem&recursive=false", None,
                                    hdrs)
            self.assertEqual((r.status, err(r)), (403, "AuthenticationFailed"), bad)
        hdrs["Authorization"] = "Basic dXNlcjpwYXNz"
        r = emulib.http_request(self.e.url, "GET", A + "/authfs?resource=filesystem&recursive=false", None, hdrs)
        self.assertEqual((r.status, err(r)), (400, "InvalidAuthenticationInfo"))

    def test_date_window_and_version(self):
        for date in (now_rfc1123(-20 * 60), now_rfc1123(20 * 60), "yesterday"):
            r = self.e.gen2("GET", A + "/authfs?resource=filesystem&recursive=true", headers={"x-ms-date": date})
            self.assertEqual((r.status, err(r)), (403, "AuthenticationFailed"), date)
        r = self.e.gen2("GET", A + "/authfs?resource=filesystem&recursive=true", headers={"x-ms-date": now_rfc1123(-600)})
        self.assertEqual(r.status, 200)
        # no date at all
        hdrs = {"x-ms-version": emulib.X_MS_VERSION}
        hdrs["Authorization"] = emulib.shared_key_auth(emulib.DEV_ACCOUNT, emulib.DEV_KEY, "GET",
                                                       A + "/authfs?resource=filesystem&recursive=true", hdrs, 0)
        r = emulib.http_request(self.e.url, "GET", A + "/authfs?resource=filesystem&recursive=true", None, hdrs)
        self.assertEqual((r.status, err(r)), (403, "AuthenticationFailed"))
        # the Date header is accepted in place of x-ms-date (and then signed in its slot)
        hdrs = {"x-ms-version": emulib.X_MS_VERSION, "Date": now_rfc1123()}
        hdrs["Authorization"] = emulib.shared_key_auth(emulib.DEV_ACCOUNT, emulib.DEV_KEY, "GET",
                                                       A + "/authfs?resource=filesystem&recursive=true", hdrs, 0)
        r = emulib.http_request(self.e.url, "GET", A + "/authfs?resource=filesystem&recursive=true", None, hdrs)
        self.assertEqual(r.status, 200, r)
        # x-ms-version is required
        hdrs = {"x-ms-date": now_rfc1123()}
        hdrs["Authorization"] = emulib.shared_key_auth(emulib.DEV_ACCOUNT, emulib.DEV_KEY, "GET",
                                                       A + "/authfs?resource=filesystem&recursive=true", hdrs, 0)
        r = emulib.http_request(self.e.url, "GET", A + "/authfs?resource=filesystem&recursive=true", None, hdrs)
        self.assertEqual((r.status, err(r)), (400, "MissingRequiredHeader"))

    def test_no_auth(self):
        r = self.e.gen2("GET", A + "/authfs?resource=filesystem&recursive=true", auth="none")
        self.assertEqual((r.status, err(r)), (401, "NoAuthenticationInformation"))
        self.assertTrue(r.header("www-authenticate").startswith("Bearer authorization_uri="))
        r = self.e.gen2("HEAD", A + "/authfs/x", auth="none")
        self.assertEqual((r.status, r.body), (401, b""))
        r = self.e.gen2("PUT", A + "/authfs/noauth?resource=file", auth="none")
        self.assertEqual(r.status, 401)
        self.assertEqual(self.e.gen2("HEAD", A + "/authfs/noauth").status, 404)

    # ---- SAS ----
    def sas(self, sp, sr="c", fs="sasfs", path="", start=-300, expiry=3600, key=emulib.DEV_KEY):
        return emulib.service_sas(emulib.DEV_ACCOUNT, key, fs, path, sp, sr, iso(start), iso(expiry))

    def test_service_sas_container(self):
        q = self.sas("racwdlmeop")
        r = self.e.gen2("PUT", A + "/sasfs/dir/f?resource=file&" + q, auth="none")
        self.assertEqual(r.status, 201, r)
        self.assertEqual(self.e.gen2("HEAD", A + "/sasfs/dir/f").header("x-ms-owner"), "$superuser")
        r = self.e.gen2("PATCH", A + "/sasfs/dir/f?action=append&position=0&" + q, b"sas!", auth="none")
        self.assertEqual(r.status, 202)
        r = self.e.gen2("PATCH", A + "/sasfs/dir/f?action=flush&position=4&" + q, auth="none")
        self.assertEqual(r.status, 200)
        r = self.e.gen2("GET", A + "/sasfs/dir/f?" + q, auth="none")
        self.assertEqual(r.body, b"sas!")
        r = self.e.gen2("GET", A + "/sasfs?resource=filesystem&recursive=true&directory=dir&" + q, auth="none")
        self.assertEqual([p["name"] for p in r.json()["paths"]], ["dir/f"])
        # rename with the source SAS inside x-ms-rename-source
        r = self.e.gen2("PUT", A + "/sasfs/dir/g?" + q, auth="none",
                        headers={"x-ms-rename-source": "/sasfs/dir/f?" + self.sas("m")})
        self.assertEqual(r.status, 201, r)
        r = self.e.gen2("DELETE", A + "/sasfs/dir/g?" + q, auth="none")
        self.assertEqual(r.status, 200)

    def test_service_sas_refusals(self):
        self.assertEqual(self.e.gen2("PUT", A + "/sasfs/present?resource=file").status, 201)
        cases = [
            ("bad key", self.sas("racwdl", key=OTHER_KEY), "AuthenticationFailed"),
            ("expired", self.sas("racwdl", start=-7200, expiry=-3600), "AuthenticationFailed"),
            ("not yet valid", self.sas("racwdl", start=3600, expiry=7200), "AuthenticationFailed"),
            ("other filesystem", self.sas("racwdl", fs="authfs"), "AuthenticationFailed"),
        ]
        for name, q, code in cases:
            r = self.e.gen2("GET", A + "/sasfs/present?" + q, auth="none")
            self.assertEqual((r.status, err(r)), (403, code), name)
        # tampered permissions: the signature covers sp
        q = self.sas("r").replace("sp=r", "sp=rw")
        r = self.e.gen2("PUT", A + "/sasfs/x?resource=file&" + q, auth="none")
        self.assertEqual((r.status, err(r)), (403, "AuthenticationFailed"))
        # valid signature, insufficient permission for the operation
        for method, target, sp in [("PUT", "/sasfs/x?resource=file", "r"), ("GET", "/sasfs/present", "w"),
                                   ("DELETE", "/sasfs/present", "rw"),
                                   ("GET", "/sasfs?resource=filesystem&recursive=true", "r"),
                                   ("PATCH", "/sasfs/present?action=setAccessControl", "rw")]:
            sep = "&" if "?" in target else "?"
            r = self.e.gen2(method, A + target + sep + self.sas(sp), auth="none",
                            headers={"x-ms-permissions": "0600"})
            self.assertEqual((r.status, err(r)), (403, "AuthorizationPermissionMismatch"), (method, target))
        self.assertEqual(self.e.gen2("HEAD", A + "/sasfs/x").status, 404)
        # missing required fields
        r = self.e.gen2("GET", A + "/sasfs/present?sv=2020-02-10&sig=abc", auth="none")
        self.assertEqual((r.status, err(r)), (403, "AuthenticationFailed"))

    def test_service_sas_blob_and_directory_scope(self):
        self.e.gen2("PUT", A + "/sasfs/scope/a/f1?resource=file")
        self.e.gen2("PUT", A + "/sasfs/scope/b/f2?resource=file")
        q = self.sas("r", sr="b", path="scope/a/f1")
        self.assertEqual(self.e.gen2("GET", A + "/sasfs/scope/a/f1?" + q, auth="none").status, 200)
        r = self.e.gen2("GET", A + "/sasfs/scope/b/f2?" + q, auth="none")
        self.assertEqual((r.status, err(r)), (403, "AuthenticationFailed"))
        q = self.sas("rl", sr="d", path="scope/a") + "&sdd=2"
        self.assertEqual(self.e.gen2("GET", A + "/sasfs/scope/a/f1?" + q, auth="none").status, 200)
        r = self.e.gen2("GET", A + "/sasfs?resource=filesystem&recursive=true&directory=scope/a&" + q, auth="none")
        self.assertEqual((r.status, [p["name"] for p in r.json()["paths"]]), (200, ["scope/a/f1"]))
        r = self.e.gen2("GET", A + "/sasfs/scope/b/f2?" + q, auth="none")
        self.assertEqual(r.status, 403)

    def test_account_sas(self):
        q = account_sas(emulib.DEV_ACCOUNT, emulib.DEV_KEY, "rwdlac", "b", "sco", iso(-60), iso(3600))
        r = self.e.gen2("PUT", A + "/acctsasfs?resource=filesystem&" + q, auth="none")
        self.assertEqual(r.status, 201, r)
        r = self.e.gen2("PUT", A + "/acctsasfs/f?resource=file&" + q, auth="none")
        self.assertEqual(r.status, 201)
        r = self.e.gen2("GET", A + "?resource=account&" + q, auth="none")
        self.assertIn("acctsasfs", [f["name"] for f in r.json()["filesystems"]])
        q = account_sas(emulib.DEV_ACCOUNT, emulib.DEV_KEY, "r", "b", "o", iso(-60), iso(3600))
        r = self.e.gen2("PUT", A + "/acctsasfs/g?resource=file&" + q, auth="none")
        self.assertEqual((r.status, err(r)), (403, "AuthorizationPermissionMismatch"))
        q = account_sas(emulib.DEV_ACCOUNT, emulib.DEV_KEY, "rwdlac", "f", "sco", iso(-60), iso(3600))
        r = self.e.gen2("GET", A + "/acctsasfs/f?" + q, auth="none")
        self.assertEqual(r.status, 403)

    # ---- OAuth ----
    def test_client_credentials_v1_and_v2(self):
        r = self.token()
        self.assertEqual(r.status, 200, r)
        t = r.json()
        self.assertEqual(t["token_type"], "Bearer")
        self.assertIsInstance(t["expires_in"], str)
        self.assertIsInstance(t["expires_on"], str)
        self.assertAlmostEqual(int(t["expires_on"]), time.time() + 3600, delta=30)
        self.assertEqual(t["resource"], "https://storage.azure.com/")
        self.assertNotIn(CLIENT_SECRET, r.body.decode())
        tok = t["access_token"]
        self.assertEqual(tok.count("."), 2)  # a JWT
        r = self.e.gen2("PUT", A + "/authfs/oauth-file?resource=file", auth="bearer:" + tok)
        self.assertEqual(r.status, 201, r)
        h = self.e.gen2("HEAD", A + "/authfs/oauth-file", auth="bearer:" + tok)
        owner = h.header("x-ms-owner")
        self.assertRegex(owner, r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
        self.assertNotEqual(owner, "$superuser")
        self.assertEqual(h.header("x-ms-group"), "$superuser")  # the parent's group
        r = self.token(v2=True)
        self.assertEqual(r.status, 200, r)
        t2 = r.json()
        self.assertIsInstance(t2["expires_in"], int)
        r = self.e.gen2("GET", A + "/authfs?resource=filesystem&recursive=true", auth="bearer:" + t2["access_token"])
        self.assertEqual(r.status, 200)
        # same client, same object id
        self.e.gen2("PUT", A + "/authfs/oauth-file2?resource=file", auth="bearer:" + t2["access_token"])
        self.assertEqual(self.e.gen2("HEAD", A + "/authfs/oauth-file2").header("x-ms-owner"), owner)

    def test_token_endpoint_errors(self):
        r = self.token(secret="wrong")
        self.assertEqual((r.status, r.json()["error"]), (401, "invalid_client"))
        self.assertIn("AADSTS7000215", r.json()["error_description"])
        self.assertNotIn(CLIENT_SECRET, r.body.decode())
        r = self.token(client="someone-else")
        self.assertEqual((r.status, r.json()["error"]), (400, "unauthorized_client"))
        r = self.token(secret="")
        self.assertEqual((r.status, r.json()["error"]), (401, "invalid_client"))
        r = self.token(resource="")
        self.assertEqual((r.status, r.json()["error"]), (400, "invalid_request"))
        r = emulib.http_request(self.e.url, "POST", "/t/oauth2/token", "grant_type=password&client_id=x",
                                {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual((r.status, r.json()["error"]), (400, "unsupported_grant_type"))
        r = emulib.http_request(self.e.url, "POST", "/t/oauth2/v2.0/token",
                                urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": CLIENT_ID,
                                                        "client_secret": CLIENT_SECRET,
                                                        "scope": "https://storage.azure.com/"}),
                                {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual((r.status, r.json()["error"]), (400, "invalid_scope"))

    def test_bad_tokens(self):
        tok = self.token().json()["access_token"]
        h, p, s = tok.split(".")
        claims = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
        claims["oid"] = "00000000-0000-4000-8000-000000000000"
        forged = h + "." + base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=") + "." + s
        for bad in ("garbage", forged, tok[:-2] + ("AA" if not tok.endswith("AA") else "BB")):
            r = self.e.gen2("GET", A + "/authfs?resource=filesystem&recursive=true", auth="bearer:" + bad)
            self.assertEqual((r.status, err(r)), (401, "InvalidAuthenticationInfo"))
            self.assertIn("Bearer", r.header("www-authenticate"))
        # a token for another audience (the Gen1 one) is refused
        other = self.token(resource="https://datalake.azure.net/").json()["access_token"]
        r = self.e.gen2("GET", A + "/authfs?resource=filesystem&recursive=true", auth="bearer:" + other)
        self.assertEqual(r.status, 401)
        self.assertIn("Audience", r.header("www-authenticate"))

    def test_imds(self):
        q = "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=" + \
            urllib.parse.quote("https://storage.azure.com/", safe="")
        r = emulib.http_request(self.e.url, "GET", q, None, {"Metadata": "true"})
        self.assertEqual(r.status, 200, r)
        t = r.json()
        self.assertEqual(t["token_type"], "Bearer")
        for k in ("expires_in", "expires_on", "not_before"):
            self.assertIsInstance(t[k], str)
        r2 = self.e.gen2("GET", A + "/authfs?resource=filesystem&recursive=true", auth="bearer:" + t["access_token"])
        self.assertEqual(r2.status, 200)
        r = emulib.http_request(self.e.url, "GET", q, None)
        self.assertEqual((r.status, r.json()["error"]), (400, "invalid_request"))
        r = emulib.http_request(self.e.url, "GET", "/metadata/identity/oauth2/token?api-version=2018-02-01", None,
                                {"Metadata": "true"})
        self.assertEqual(r.status, 400)
        r = emulib.http_request(self.e.url, "GET", q + "&client_id=my-uami", None, {"Metadata": "true"})
        self.assertEqual((r.status, r.json()["client_id"]), (200, "my-uami"))

    def test_token_expiry(self):
        short = self.emus["short"]
        self.assertEqual(short.gen2("PUT", A + "/ttlfs?resource=filesystem").status, 201)
        r = self.token(emu=short)  # no client id/secret configured: any client is accepted
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["expires_in"], "1")
        tok = r.json()["access_token"]
        time.sleep(1.1)
        r = short.gen2("GET", A + "/ttlfs?resource=filesystem&recursive=true", auth="bearer:" + tok)
        self.assertEqual((r.status, err(r)), (401, "InvalidAuthenticationInfo"))
        self.assertIn("expired", r.header("www-authenticate"))

    def test_tokens_survive_restart(self):
        tok = self.token().json()["access_token"]
        self.e.restart()
        r = self.e.gen2("GET", A + "/authfs?resource=filesystem&recursive=true", auth="bearer:" + tok)
        self.assertEqual(r.status, 200, r)

    def test_zz_secrets_not_logged(self):
        self.token()
        self.token(secret="wrong-secret-value")
        self.e.gen2("GET", A + "/authfs?resource=filesystem&recursive=true", auth="key:" + OTHER_KEY)
        log = self.e.read_log()
        for secret in (CLIENT_SECRET, "wrong-secret-value", emulib.DEV_KEY, OTHER_KEY):
            self.assertNotIn(secret, log)


if __name__ == "__main__":
    emulib.main()
