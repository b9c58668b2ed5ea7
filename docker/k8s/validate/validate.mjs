// Checks docker/k8s/*.yaml without a cluster: every document against the Kubernetes API schema of its
// apiVersion/kind (kubernetes-models: the API's OpenAPI schemas compiled for ajv: required fields, types,
// enums; like the API server's non-strict mode it does not refuse unknown field names), then the rules
// the dualpipe sidecar depends on (README, "Kubernetes sidecar"), which name every field they need, so a
// misspelt probe or annotation fails here.
// With DUALPIPE (the binary), the ConfigMap's config.json and docker/compose/config.json must also pass
// `dualpipe --check-config` (the Secret's file replaced by a throwaway key), and docker/compose.yaml is
// checked against the files it names and the drain time.
// Usage: node validate.mjs DIR [DUALPIPE]   (DIR holds the manifests; run by the ctest k8s_manifests)
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parse, parseAllDocuments } from "yaml";

const dir = process.argv[2];
const dualpipe = process.argv[3];
if (!dir) {
  console.error("usage: node validate.mjs DIR [DUALPIPE]");
  process.exit(2);
}
const problems = [];
const fail = (file, msg) => problems.push(`${file}: ${msg}`);

// apiVersion "apps/v1" -> kubernetes-models/apps/v1, "v1" -> kubernetes-models/v1.
async function modelFor(apiVersion, kind) {
  try {
    const mod = await import(`kubernetes-models/${apiVersion}/${kind}`);
    return mod[kind];
  } catch (e) {
    return null;
  }
}

const docs = [];
for (const f of fs.readdirSync(dir).filter((n) => n.endsWith(".yaml")).sort()) {
  const text = fs.readFileSync(path.join(dir, f), "utf8");
  for (const d of parseAllDocuments(text)) {
    if (d.errors.length) {
      fail(f, `YAML: ${d.errors.map((e) => e.message).join("; ")}`);
      continue;
    }
    const obj = d.toJS();
    if (obj) docs.push({ file: f, obj });
  }
}
if (docs.length === 0) fail(dir, "no manifests found");

for (const { file, obj } of docs) {
  const where = `${file} ${obj.kind}/${obj.metadata?.name}`;
  const Model = await modelFor(obj.apiVersion, obj.kind);
  if (!Model) {
    fail(where, `unknown apiVersion/kind ${obj.apiVersion}/${obj.kind}`);
    continue;
  }
  try {
    new Model(obj).validate();
  } catch (e) {
    fail(where, `schema: ${e.message}`);
  }
}

// ---- dualpipe's own rules
const byKind = (k) => docs.filter((d) => d.obj.kind === k);
const deploy = byKind("Deployment")[0];
const cm = byKind("ConfigMap").find((d) => d.obj.data && d.obj.data["config.json"]);
if (!deploy) fail(dir, "no Deployment");
if (!cm) fail(dir, "no ConfigMap with config.json");
if (deploy && cm) {
  const f = deploy.file;
  const spec = deploy.obj.spec.template.spec;
  let config;
  try {
    config = JSON.parse(cm.obj.data["config.json"]);
  } catch (e) {
    fail(cm.file, `config.json is not JSON: ${e.message}`);
  }
  const side = spec.containers.find((c) => c.name === "dualpipe");
  if (!side) fail(f, "no container named dualpipe");
  if (config && side) {
    const drain = config.shutdown?.drain_ms ?? 5000;
    const need = Math.ceil((2 * drain) / 1000) + 5;
    if ((spec.terminationGracePeriodSeconds ?? 30) < need)
      fail(f, `terminationGracePeriodSeconds ${spec.terminationGracePeriodSeconds} < 2 x shutdown.drain_ms (${drain} ms) + 5 s = ${need}`);
    const adminPort = Number((config.admin?.listen ?? "127.0.0.1:14080").split(":").pop());
    const portOf = (p) => (typeof p === "number" ? p : side.ports?.find((x) => x.name === p)?.containerPort);
    for (const [probe, want] of [["readinessProbe", "/readyz"], ["livenessProbe", "/healthz"]]) {
      const g = side[probe]?.httpGet;
      if (!g || g.path !== want) fail(f, `${probe} must be an httpGet on ${want}`);
      else if (portOf(g.port) !== adminPort) fail(f, `${probe} port ${g.port} is not admin.listen's ${adminPort}`);
    }
    if ((config.admin?.listen ?? "127.0.0.1:14080").startsWith("127.")) fail(cm.file, "admin.listen on loopback: the kubelet's probes cannot reach it");
    const ann = deploy.obj.spec.template.metadata.annotations ?? {};
    if (ann["prometheus.io/scrape"] !== "true" || Number(ann["prometheus.io/port"]) !== adminPort || ann["prometheus.io/path"] !== "/metrics")
      fail(f, "Prometheus annotations must name the admin port and /metrics");
    const sp = side.securityContext?.seccompProfile ?? spec.securityContext?.seccompProfile;
    if (sp?.type !== "Localhost" || !sp.localhostProfile) fail(f, "the dualpipe container needs the io_uring seccomp profile as a localhostProfile");
    // The state directory on a PersistentVolumeClaim, never an emptyDir.
    const spool = config.spool?.dir ?? "/var/lib/dualpipe/spool";
    const mount = (side.volumeMounts ?? []).filter((m) => spool.startsWith(m.mountPath)).sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
    const vol = mount && spec.volumes.find((v) => v.name === mount.name);
    if (!vol?.persistentVolumeClaim) fail(f, `spool.dir ${spool} must be on a persistentVolumeClaim volume (an emptyDir loses acknowledged writes)`);
    if (deploy.obj.spec.strategy?.type !== "Recreate" || deploy.obj.spec.replicas !== 1)
      fail(f, "one replica with strategy Recreate: two proxies must never share a journal");
    // Secrets as files, never in the environment.
    for (const c of spec.containers) {
      for (const e of c.env ?? []) if (e.valueFrom?.secretKeyRef) fail(f, `${c.name}: secret ${e.name} in the environment; mount it as a file`);
      if ((c.envFrom ?? []).some((e) => e.secretRef)) fail(f, `${c.name}: envFrom a Secret; mount it as a file`);
    }
    const text = cm.obj.data["config.json"];
    for (const m of text.matchAll(/"([a-z_]+)_file"\s*:\s*"([^"]+)"/g)) {
      const file = m[2];
      const sm = (side.volumeMounts ?? []).find((vm) => file.startsWith(vm.mountPath + "/"));
      const sv = sm && spec.volumes.find((v) => v.name === sm.name);
      if (!sv?.secret) fail(cm.file, `${m[1]}_file ${file} is not on a Secret volume`);
      else if (((sv.secret.defaultMode ?? 0o644) & 0o007) !== 0) fail(f, `Secret volume ${sv.name}: defaultMode lets other users read it (dualpipe refuses such key files)`);
    }
    if (!spec.securityContext?.runAsNonRoot) fail(f, "runAsNonRoot must be set");
  }
}

// `dualpipe --check-config` on a config file; returns its stderr on failure, "" when valid.
function checkConfig(file) {
  try {
    execFileSync(dualpipe, ["--check-config", file], { stdio: ["ignore", "ignore", "pipe"] });
    return "";
  } catch (e) {
    return (e.stderr || "").toString().trim() || String(e);
  }
}

if (dualpipe && cm) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "dp-k8s-"));
  try {
    const keyFile = path.join(tmp, "gen2-account-key");
    fs.writeFileSync(keyFile, Buffer.alloc(32, 7).toString("base64") + "\n", { mode: 0o600 });
    const text = cm.obj.data["config.json"].replace(/"account_key_file"\s*:\s*"[^"]*"/, `"account_key_file": "${keyFile}"`);
    fs.writeFileSync(path.join(tmp, "config.json"), text);
    const err = checkConfig(path.join(tmp, "config.json"));
    if (err) fail(cm.file, `config.json does not pass dualpipe --check-config: ${err}`);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

// docker/compose.yaml, beside the k8s directory.
const composeFile = path.join(dir, "..", "compose.yaml");
if (fs.existsSync(composeFile)) {
  const base = path.dirname(composeFile);
  let c = null;
  try {
    c = parse(fs.readFileSync(composeFile, "utf8"));
  } catch (e) {
    fail("compose.yaml", `YAML: ${e.message}`);
  }
  const svc = c?.services ?? {};
  for (const name of ["gen1", "gen2", "dualpipe"]) if (!svc[name]) fail("compose.yaml", `no service ${name}`);
  for (const name of ["gen2", "dualpipe"])
    if (svc[name] && svc[name].network_mode !== "service:gen1") fail("compose.yaml", `${name} must share gen1's network namespace`);
  const dp = svc.dualpipe ?? {};
  const cfgMount = (dp.volumes ?? []).map((v) => String(v).split(":")).find((p) => p[1] === "/etc/dualpipe/config.json");
  if (!cfgMount) fail("compose.yaml", "dualpipe does not mount /etc/dualpipe/config.json");
  const stateMount = (dp.volumes ?? []).map((v) => String(v).split(":")).find((p) => p[1] === "/var/lib/dualpipe");
  if (!stateMount || !(c.volumes ?? {})[stateMount[0]]) fail("compose.yaml", "dualpipe's /var/lib/dualpipe must be a named volume");
  for (const opt of dp.security_opt ?? []) {
    const m = String(opt).match(/^seccomp=(.*)$/);
    if (m && !fs.existsSync(path.join(base, m[1]))) fail("compose.yaml", `seccomp profile ${m[1]} not found`);
  }
  if (cfgMount) {
    const cfgPath = path.join(base, cfgMount[0]);
    if (!fs.existsSync(cfgPath)) fail("compose.yaml", `${cfgMount[0]} not found`);
    else {
      const conf = JSON.parse(fs.readFileSync(cfgPath, "utf8"));
      const drain = conf.shutdown?.drain_ms ?? 5000;
      const grace = parseInt(String(dp.stop_grace_period ?? "10s"), 10);
      if (grace < (2 * drain) / 1000) fail("compose.yaml", `stop_grace_period ${dp.stop_grace_period} < 2 x shutdown.drain_ms (${drain} ms)`);
      if (dualpipe) {
        const err = checkConfig(cfgPath);
        if (err) fail("compose.yaml", `${cfgMount[0]} does not pass dualpipe --check-config: ${err}`);
      }
    }
  }
}

if (problems.length) {
  for (const p of problems) console.error(`k8s: ${p}`);
  console.error(`k8s: ${problems.length} problem(s) in ${dir}`);
  process.exit(1);
}
console.log(`k8s: ${docs.length} manifests valid (${docs.map((d) => `${d.obj.kind}/${d.obj.metadata.name}`).join(", ")})` +
  (dualpipe ? "; their config and compose's pass dualpipe --check-config" : ""));
