"""dualpipe rewrite DIR (README "Rewrite") on a fixture tree of realistic files (tests/fixtures/rewrite/tree: a
PySpark job, a Scala job, a Java class, HiveQL, core-site.xml, spark-defaults.conf, a .properties, an
Airflow-style YAML, a shell script, a notebook, a Data Factory pipeline and linked service, a Delta log and an
Iceberg metadata file), copied to a temporary directory for each test:

- the dry run prints exactly the expected unified diff (tests/fixtures/rewrite/expected.diff, which `patch -p1`
  applies), changes nothing, and exits 3;
- --apply rewrites exactly those lines, keeps each original as FILE.dualpipe-bak (or under --backup-dir),
  keeps each file's mode, leaves the table metadata alone, and the notebook and JSON files still parse with
  only ADL strings changed; a second run has nothing to rewrite (idempotent);
- the report (--json) names every reference it could not rewrite with its reason: the run-time built path,
  adl://home, adl:///, the other account, the unmapped path, the Gen1 REST endpoint, the Delta and Iceberg
  metadata, the ADF Gen1 types, the ADL key without counterpart and the missing auth type;
- symbolic links out of DIR, binary and oversized files are skipped and listed; --include/--exclude;
- bad input: DIR missing, a config without mappings, an unreadable file, usage errors.
No emulator is needed: rewrite reads only the config and the files."""
import hashlib
import json
import os
import shutil
import stat
import subprocess
import tempfile
import unittest

import proxylib

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "fixtures", "rewrite")
CONFIG = os.path.join(FIX, "dualpipe.json")
DUALPIPE = proxylib.DUALPIPE_BIN


def run(*args, user=None):
    pre = None
    if user is not None:
        def pre():
            os.setgid(user)
            os.setuid(user)
    p = subprocess.run([DUALPIPE, "rewrite", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30,
                       preexec_fn=pre)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def snapshot(root):
    """{relative path: (sha256, mode)} of every file and link under root."""
    out = {}
    for d, dirs, files in os.walk(root):
        for n in files + [x for x in dirs if os.path.islink(os.path.join(d, x))]:
            p = os.path.join(d, n)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                out[os.path.relpath(p, root)] = ("link:" + os.readlink(p), 0)
            else:
                with open(p, "rb") as f:
                    out[os.path.relpath(p, root)] = (hashlib.sha256(f.read()).hexdigest(), stat.S_IMODE(st.st_mode))
    return out


def adl_string(s):
    return "adl" in s.lower() or s.lower() in ("clientcredential", "refreshtoken", "msi")


def same_shape(a, b, where="$"):
    """Same JSON structure and key order; a string differs only where the old one named ADL."""
    assert type(a) is type(b), where
    if isinstance(a, dict):
        assert len(a) == len(b), where
        for (ka, va), (kb, vb) in zip(a.items(), b.items()):
            assert ka == kb or adl_string(ka), (where, ka, kb)
            same_shape(va, vb, where + "." + ka)
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            same_shape(x, y, "%s[%d]" % (where, i))
    elif isinstance(a, str):
        assert a == b or adl_string(a), (where, a, b)
        if a != b:
            assert "abfss://" in b or "fs.azure." in b or "azurebfs" in b, (where, b)
    else:
        assert a == b, where


class Rewrite(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="dp-rewrite-")
        self.tree = os.path.join(self.tmp, "tree")
        shutil.copytree(os.path.join(FIX, "tree"), self.tree, symlinks=True)
        os.chmod(os.path.join(self.tree, "scripts", "backup.sh"), 0o750)
        os.chmod(os.path.join(self.tree, "conf", "ingest.properties"), 0o600)
        # links: out of DIR (listed, not followed) and inside DIR (its target is scanned where it is)
        os.symlink("/etc/hostname", os.path.join(self.tree, "conf", "hostname.conf"))
        os.symlink("/usr/share", os.path.join(self.tree, "shared"))
        os.symlink("core-site.xml", os.path.join(self.tree, "conf", "core-site-link.xml"))
        # a .git directory is never scanned
        os.makedirs(os.path.join(self.tree, ".git"))
        with open(os.path.join(self.tree, ".git", "config.json"), "w") as f:
            f.write('{"u": "adl://contosolake.azuredatalakestore.net/warehouse/git"}\n')
        with open(os.path.join(FIX, "expected.diff")) as f:
            self.expected = f.read()

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def report(self, name="r.json"):
        with open(os.path.join(self.tmp, name)) as f:
            return json.load(f)

    def test_dry_run_prints_the_diff_and_changes_nothing(self):
        before = snapshot(self.tree)
        rc, out, err = run(self.tree, "--config", CONFIG, "--json", os.path.join(self.tmp, "r.json"))
        self.assertEqual(rc, 3, err)
        self.assertEqual(out, self.expected)
        self.assertEqual(snapshot(self.tree), before)
        self.assertIn("dry run: run again with --apply", err)
        r = self.report()
        self.assertFalse(r["applied"])
        self.assertEqual(r["files_pending"], 11)
        self.assertEqual(r["files_changed"], 0)
        self.assertEqual(r["rewrites"], {"total": 58, "uri": 29, "config_key": 20, "config_value": 9})
        # the diff is a patch: patch -p1 applied to a copy gives what --apply writes (checked below)
        copy = os.path.join(self.tmp, "patched")
        shutil.copytree(os.path.join(FIX, "tree"), copy)
        p = subprocess.run(["patch", "-p1", "-s", "-d", copy], input=out.encode(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_report_names_what_it_cannot_rewrite(self):
        rc, out, err = run(self.tree, "--config", CONFIG, "--json", os.path.join(self.tmp, "r.json"))
        self.assertEqual(rc, 3, err)
        r = self.report()
        got = sorted((u["file"], u["line"], u["reason"]) for u in r["unrewritable"])
        want = sorted([
            ("adf/linkedService/ContosoLakeGen1.json", 4, "adf_gen1_type"),
            ("adf/linkedService/ContosoLakeGen1.json", 6, "gen1_endpoint"),
            ("adf/pipeline/CopyPartnersToWarehouse.json", 39, "adf_gen1_type"),
            ("conf/core-site.xml", 5, "unmapped_path"),          # fs.defaultFS: the account's root, no mapping of /
            ("conf/core-site.xml", 8, "auth_type_missing"),
            ("conf/core-site.xml", 32, "no_abfs_counterpart"),   # dfs.adls.home.hostname
            ("conf/core-site.xml", 33, "gen1_endpoint"),
            ("conf/ingest.properties", 5, "auth_type_missing"),
            ("conf/spark-defaults.conf", 4, "auth_type_missing"),
            ("conf/spark-defaults.conf", 5, "no_abfs_counterpart"),  # fs.adl.oauth2.msi.port
            ("dags/nightly.yaml", 10, "no_account"),                # adl:///warehouse/compacted
            ("dags/nightly.yaml", 13, "gen1_endpoint"),             # curl .../webhdfs/v1
            ("jobs/daily_events.py", 9, "auth_type_missing"),
            ("jobs/daily_events.py", 21, "runtime_built"),          # "adl://" + ACCOUNT + ...
            ("notebooks/partner_report.ipynb", 41, "runtime_built"),  # 'adl://%s...' % (...)
            ("sql/orders.hql", 14, "unmapped_path"),                # /staging/returns
            ("src/main/java/com/contoso/LakePaths.java", 9, "other_account"),
            ("src/main/java/com/contoso/LakePaths.java", 18, "runtime_built"),  # String.format
            ("src/main/scala/com/contoso/Sessions.scala", 12, "adl_home"),
            ("tables/clicks/metadata/v2.metadata.json", 4, "table_metadata"),
            ("tables/clicks/metadata/v2.metadata.json", 10, "table_metadata"),
            ("tables/events/_delta_log/00000000000000000000.json", 2, "table_metadata"),
        ])
        self.assertEqual(got, want)
        self.assertEqual(r["unrewritable_total"], len(want))
        by = {u["reason"]: u for u in r["unrewritable"]}
        self.assertTrue(by["runtime_built"]["gen2_only_front"])
        self.assertTrue(by["table_metadata"]["gen2_only_front"])
        self.assertFalse(by["adf_gen1_type"]["gen2_only_front"])
        self.assertIn("AzureBlobFS", [u for u in r["unrewritable"] if u["line"] == 4
                                      and u["reason"] == "adf_gen1_type"][0]["detail"])
        self.assertIn("webhdfs://127.0.0.1:14000", r["gen2_only_front"])
        self.assertIn("gen2-only", err)
        skipped = {s["file"]: s["why"] for s in r["skipped"]}
        self.assertEqual(sorted(skipped), ["conf/hostname.conf", "jobs/model.pkl.py", "shared"])
        self.assertIn("symbolic link out of DIR", skipped["shared"])
        self.assertEqual(skipped["jobs/model.pkl.py"], "binary")
        self.assertNotIn(".git", out + err)
        self.assertEqual(r["errors"], [])

    def test_apply_rewrites_keeps_backups_and_is_idempotent(self):
        before = snapshot(self.tree)
        rc, out, err = run(self.tree, "--config", CONFIG, "--apply", "--json", os.path.join(self.tmp, "r.json"))
        self.assertEqual(rc, 3, err)  # applied, but some references need a human
        self.assertEqual(out, self.expected)
        r = self.report()
        self.assertTrue(r["applied"])
        self.assertEqual(r["files_changed"], 11)
        after = snapshot(self.tree)
        patched = os.path.join(self.tmp, "patched")
        shutil.copytree(os.path.join(FIX, "tree"), patched)
        subprocess.run(["patch", "-p1", "-s", "-d", patched], input=self.expected.encode(), check=True, timeout=30)
        want = snapshot(patched)
        changed = sorted(k for k in want if want[k][0] != before[k][0])
        self.assertEqual(len(changed), 11)
        for rel in before:
            bak = rel + ".dualpipe-bak"
            if rel in changed:
                self.assertEqual(after[rel][0], want[rel][0], rel)
                self.assertEqual(after[rel][1], before[rel][1], rel)      # mode kept
                self.assertEqual(after[bak], before[rel], rel)            # the original, same mode
            else:
                self.assertEqual(after[rel], before[rel], rel)            # untouched, metadata included
                self.assertNotIn(bak, after)
        self.assertEqual(after["scripts/backup.sh"][1], 0o750)
        self.assertEqual(after["conf/ingest.properties"][1], 0o600)
        self.assertEqual(after["conf/core-site-link.xml"], before["conf/core-site-link.xml"])  # still a link
        self.assertFalse([n for n in os.listdir(os.path.join(self.tree, "conf")) if "dualpipe-tmp" in n])
        # notebooks and JSON: still valid, same structure and key order, only ADL strings changed
        for rel in ("notebooks/partner_report.ipynb", "adf/pipeline/CopyPartnersToWarehouse.json"):
            with open(os.path.join(self.tree, rel + ".dualpipe-bak"), encoding="utf-8") as f:
                old = json.load(f)
            with open(os.path.join(self.tree, rel), encoding="utf-8") as f:
                new = json.load(f)
            same_shape(old, new)
        with open(os.path.join(self.tree, "notebooks/partner_report.ipynb"), encoding="utf-8") as f:
            nb = json.load(f)
        src = "".join(nb["cells"][1]["source"])
        self.assertIn('spark.read.csv("abfss://partners@contosogen2.dfs.core.windows.net/in/acme/2026/12/06.csv"',
                      src)
        self.assertIn("org.apache.hadoop.fs.azurebfs.oauth2.ClientCredsTokenProvider", src)
        self.assertIn("café", "".join(nb["cells"][2]["source"]))
        # the table metadata is exactly as it was
        for rel in ("tables/events/_delta_log/00000000000000000000.json", "tables/clicks/metadata/v2.metadata.json"):
            self.assertEqual(after[rel], before[rel])
        # a second run: nothing to rewrite, the same references to report
        rc, out2, err2 = run(self.tree, "--config", CONFIG, "--json", os.path.join(self.tmp, "r2.json"))
        self.assertEqual(rc, 3, err2)
        self.assertEqual(out2, "")
        r2 = self.report("r2.json")
        self.assertEqual(r2["rewrites"]["total"], 0)
        self.assertEqual(r2["files_pending"], 0)
        self.assertEqual(sorted((u["file"], u["reason"]) for u in r2["unrewritable"]),
                         sorted((u["file"], u["reason"]) for u in r["unrewritable"]))
        self.assertEqual(snapshot(self.tree), after)

    def test_clean_tree_exit_status_and_backup_dir(self):
        clean = os.path.join(self.tmp, "clean")
        os.makedirs(os.path.join(clean, "jobs"))
        with open(os.path.join(clean, "jobs", "load.py"), "w") as f:
            f.write('SRC = "adl://contosolake.azuredatalakestore.net/landing/x/"\n')
        with open(os.path.join(clean, "notes.txt"), "w") as f:
            f.write("see adl://contosolake.azuredatalakestore.net/warehouse/y\n")
        bdir = os.path.join(self.tmp, "backups")
        rc, out, err = run(clean, "--config", CONFIG)
        self.assertEqual(rc, 3, err)                       # dry run, a change pending
        self.assertNotIn("notes.txt", out)                 # .txt is not scanned unless included
        rc, out, err = run(clean, "--config", CONFIG, "--apply", "--backup-dir", bdir, "--include", "*.txt")
        self.assertEqual(rc, 0, err)                       # applied, nothing left for a human
        self.assertIn("+++ b/notes.txt", out)
        with open(os.path.join(clean, "jobs", "load.py")) as f:
            self.assertEqual(f.read(), 'SRC = "abfss://raw@contosogen2.dfs.core.windows.net/landing/x/"\n')
        with open(os.path.join(bdir, "jobs", "load.py")) as f:
            self.assertIn("adl://", f.read())
        self.assertFalse(os.path.exists(os.path.join(clean, "jobs", "load.py.dualpipe-bak")))
        rc, out, err = run(clean, "--config", CONFIG, "--include", "*.txt")
        self.assertEqual((rc, out), (0, ""), err)          # idempotent
        # --exclude, and --max-file-size lists what it skips
        with open(os.path.join(clean, "jobs", "big.py"), "w") as f:
            f.write("# " + "x" * 4096 + "\nP = 'adl://contosolake.azuredatalakestore.net/warehouse/big'\n")
        rc, out, err = run(clean, "--config", CONFIG, "--max-file-size", "1K", "--json", os.path.join(self.tmp, "s.json"))
        self.assertEqual(rc, 0, err)
        self.assertIn({"file": "jobs/big.py", "why": "larger than --max-file-size (4160 bytes)"},
                      self.report("s.json")["skipped"])
        rc, out, err = run(clean, "--config", CONFIG, "--exclude", "big.py")
        self.assertEqual((rc, out), (0, ""), err)
        # JSON that is not valid, or that a key rename would give a duplicate key: reported, left as it is
        bad = {"conf/bad.json": '{"p": "adl://contosolake.azuredatalakestore.net/warehouse/a",}\n',
               "conf/dup.json": '{"fs.adl.oauth2.client.id": "a", "fs.azure.account.oauth2.client.id": "b",\n'
                                ' "p": "adl://contosolake.azuredatalakestore.net/warehouse/b"}\n'}
        os.makedirs(os.path.join(clean, "conf"))
        for rel, text in bad.items():
            with open(os.path.join(clean, rel), "w") as f:
                f.write(text)
        rc, out, err = run(clean, "--config", CONFIG, "--apply", "--exclude", "big.py",
                           "--json", os.path.join(self.tmp, "j.json"))
        self.assertEqual((rc, out), (3, ""), err)
        got = sorted((u["file"], u["reason"]) for u in self.report("j.json")["unrewritable"])
        self.assertEqual(got, [("conf/bad.json", "invalid_json"), ("conf/dup.json", "json_check_failed")])
        for rel, text in bad.items():
            with open(os.path.join(clean, rel)) as f:
                self.assertEqual(f.read(), text)

    def test_gen2_only_config_without_gen1(self):
        # phase gen2-only may leave gen1.endpoint out: URIs of any Gen1 account are mapped, unless --gen1-host
        cfg = os.path.join(self.tmp, "g2o.json")
        with open(CONFIG) as f:
            c = json.load(f)
        del c["gen1"]
        c["phase"] = "gen2-only"
        with open(cfg, "w") as f:
            json.dump(c, f)
        d = os.path.join(self.tmp, "g2o")
        os.makedirs(d)
        with open(os.path.join(d, "a.py"), "w") as f:
            f.write('P = "adl://fabrikamlake.azuredatalakestore.net/warehouse/x"\n')
        rc, out, err = run(d, "--config", cfg)
        self.assertEqual(rc, 3, err)
        self.assertIn('+P = "abfss://warehouse@contosogen2.dfs.core.windows.net/x"', out)
        self.assertIn("mappings of any Gen1 account", err)
        rc, out, err = run(d, "--config", cfg, "--gen1-host", "ContosoLake.azuredatalakestore.net")
        self.assertEqual((rc, out), (3, ""), err)
        self.assertIn("other_account", err)

    def test_bad_input(self):
        rc, out, err = run(os.path.join(self.tmp, "missing"), "--config", CONFIG)
        self.assertEqual(rc, 1)
        self.assertIn("missing: No such file or directory", err)
        nomap = os.path.join(self.tmp, "nomap.json")
        with open(CONFIG) as f:
            c = json.load(f)
        del c["gen2"]["mappings"]
        with open(nomap, "w") as f:
            json.dump(c, f)
        rc, out, err = run(self.tree, "--config", nomap)
        self.assertEqual(rc, 1)
        self.assertIn("gen2.mappings", err)
        for argv, says in (([], "DIR is required"), ([self.tree], "--config FILE is required"),
                           ([self.tree, "--config", CONFIG, "--max-file-size", "lots"], "--max-file-size"),
                           ([self.tree, "--config", CONFIG, "--bogus"], "unknown option --bogus"),
                           ([self.tree, self.tree, "--config", CONFIG], "one DIR only"),
                           ([self.tree, "--config", CONFIG, "--gen2-host", "a b"], "--gen2-host")):
            rc, out, err = run(*argv)
            self.assertEqual(rc, 2, (argv, err))
            self.assertIn(says, err.splitlines()[0], argv)
        rc, out, err = run("--help")
        self.assertEqual(rc, 0)
        self.assertIn("usage: dualpipe rewrite DIR", out)
        # an unreadable file: an error naming it, the rest still scanned, exit 1
        secret = os.path.join(self.tree, "jobs", "secret.py")
        with open(secret, "w") as f:
            f.write("X = 'adl://contosolake.azuredatalakestore.net/warehouse/s'\n")
        os.chmod(secret, 0)
        user = None
        if os.geteuid() == 0:  # root reads anything: run as nobody over a tree nobody can read
            user = 65534
            for d, dirs, files in os.walk(self.tmp):
                os.chmod(d, 0o755)
                for n in files:
                    if os.path.join(d, n) != secret and not os.path.islink(os.path.join(d, n)):
                        os.chmod(os.path.join(d, n), 0o644)
            os.chmod(self.tmp, 0o755)
        rc, out, err = run(self.tree, "--config", CONFIG, user=user)
        self.assertEqual(rc, 1, err)
        self.assertIn("ERROR  jobs/secret.py: cannot read: Permission denied", err)
        self.assertIn("+++ b/jobs/daily_events.py", out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
