"""Template renderer: fills [[KIND.mod:tag]] placeholders and records spans.

Placeholder syntax inside a template string:
  [[KIND]]            generate a value of KIND (label comes from the kind)
  [[KIND.m1.m2]]      with modifiers (origin codes, lc/uc/title/mi/ascii, formats)
  [[KIND:tag]]        also remember the value under tag
  [[KIND@tag]]        derive from a remembered value (e.g. EMAIL@p: email of person p)
  [[=tag]]            repeat a remembered value (same label -> second span)
  [[=tag.first]]      the remembered person's given name only (unlabelled: a lone given name)
UPPERCASE kinds are labelled; lowercase kinds are unlabelled hard negatives.
"""
import re
import string
import uuid as _uuid

import values as V
from values import rng, rs, dg

PH = re.compile(r"\[\[([^\[\]]+?)\]\]")

# ------------------------------------------------------------------ labelled kinds


def k_person(mods, ref, ctx):
    origin = next((m for m in mods if m in V.ORIGINS), None)
    p = V.make_person(origin)
    s = p["full"]
    if "mi" in mods:
        parts = s.split(" ")
        s = parts[0] + " " + rng.choice("ABCDEFGHJKLMNPRSTW") + ". " + " ".join(parts[1:])
    if "title" in mods:
        s = rng.choice(["Dr.", "Dr", "Mr.", "Ms.", "Mrs.", "Prof.", "Dr."]) + " " + p["fam1"]
    if "ascii" in mods:
        s = V.fold(s)
    if "lc" in mods:
        s = s.lower()
    if "uc" in mods:
        s = s.upper()
    return s, p


def k_email(mods, ref, ctx):
    if "role" in mods:
        dom = ctx.get("_dom") if "own" in mods else None
        return V.role_email(dom)
    person = ctx[ref]["meta"] if ref else None
    dom = None
    if "work" in mods:
        dom = ctx.setdefault("_dom", rng.choice(V.WORK_DOMAINS))
    elif "free" in mods:
        dom = rng.choice(V.FREEMAIL)
    e = V.email_for(person, dom)
    if "enc" in mods:
        e = e.replace("+", "%2B").replace("@", "%40")
    return e


def k_phone(mods, ref, ctx):
    c = next((m for m in mods if len(m) == 2), None)
    return V.phone(c)


def k_phone_tel(mods, ref, ctx):
    e164, disp = V.phone_tel_pair()
    return [("<tel:", None), (e164, "PHONE_NUMBER"), ("|", None), (disp, "PHONE_NUMBER"), (">", None)]


def k_cc(mods, ref, ctx):
    brand = next((m for m in mods if m in ("visa", "mc", "amex", "disc", "jcb", "diners", "unionpay", "test", "maestro", "visa19")), None)
    style = next((m for m in mods if m in ("plain", "space", "dash")), None)
    return V.fmt_card(V.card_digits(brand), style)


def k_ssn(mods, ref, ctx):
    a, g, n = V.ssn_parts()
    if "plain" in mods:
        return a + g + n
    if "space" in mods:
        return f"{a} {g} {n}"
    return f"{a}-{g}-{n}"


def k_iban(mods, ref, ctx):
    c = next((m.upper() for m in mods if m.upper() in V.IBAN_SPECS), None)
    grouped = True if "grouped" in mods else (False if "compact" in mods else None)
    return V.fmt_iban(V.make_iban(c), grouped)


def k_ip(mods, ref, ctx):
    if "v6" in mods:
        if "ll" in mods:
            return V.ipv6_private("ll")
        return V.ipv6_private("ula") if "priv" in mods else V.ipv6_public()
    return V.ipv4_private() if "priv" in mods else V.ipv4_public()


def k_loc(mods, ref, ctx):
    c = next((m for m in mods if m in V.ADDR), None) or rng.choice(list(V.ADDR))
    a, b = V.ADDR[c]()
    if "ml" in mods:
        return a.replace(", ", "\n") + "\n" + b
    return a + ", " + b if c != "de" or rng.random() < 0.7 else a + " " + b


def k_city(mods, ref, ctx):
    return rng.choice(V.RES_CITIES)


def k_dl(mods, ref, ctx):
    st = mods[0] if mods else rng.choice(["ca", "ny", "fl", "wa", "il", "pa", "tx", "nj", "mi", "oh", "ma", "az", "va", "wi", "md", "ga"])
    return V.driver_license(st)


def k_dob(mods, ref, ctx):
    return V.dob(mods[0] if mods else None)


def k_pw(mods, ref, ctx):
    if "wifi" in mods:
        return V.wifi_password()
    if "amp" in mods:  # a password containing '&', as Slack delivers it (escaped)
        return rng.choice(V.PW_WORDS) + "&amp;" + rng.choice(V.PW_WORDS).lower() + str(rng.randint(10, 99))
    if "alnum" in mods:
        return rs(rng.randint(12, 18))
    if "url" in mods:  # password that survives inside a URL's userinfo
        pw = V.password()
        for ch in "@#/?%:+=^":
            pw = pw.replace(ch, rng.choice("!*-_."))
        return pw.strip("-_.")
    return V.password()


def k_basic(mods, ref, ctx):
    user = rng.choice(["deploy", "admin", "svc-reporting", "jenkins", "ci-bot", "grafana", "api"])
    return V.b64(f"{user}:{V.password()}")


def k_k8s_b64(mods, ref, ctx):
    if "user" in mods:
        return V.b64(rng.choice(["app_rw", "postgres", "svc_orders", "admin", "readonly"]))
    return V.b64(V.password())


LABELLED = {
    "PERSON": ("PERSON", k_person),
    "EMAIL": ("EMAIL_ADDRESS", k_email),
    "PHONE": ("PHONE_NUMBER", k_phone),
    "PHONE_TEL": (None, k_phone_tel),
    "CC": ("CREDIT_CARD", k_cc),
    "SSN": ("US_SSN", k_ssn),
    "IBAN": ("IBAN_CODE", k_iban),
    "IP": ("IP_ADDRESS", k_ip),
    "LOC": ("LOCATION", k_loc),
    "CITY": ("LOCATION", k_city),
    "ACCT": ("US_BANK_NUMBER", lambda m, r, c: V.bank_account()),
    "ROUTING": ("US_BANK_NUMBER", lambda m, r, c: V.aba_routing()),
    "PASSPORT": ("US_PASSPORT", lambda m, r, c: V.passport(True if "letter" in m else (False if "num" in m else None))),
    "DL": ("US_DRIVER_LICENSE", k_dl),
    "DOB": ("DATE_OF_BIRTH", k_dob),
    "PW": ("SECRET", k_pw),
    "BASIC": ("SECRET", k_basic),
    "K8S_B64": ("SECRET", k_k8s_b64),
}
def _secret(f):
    def g(mods, ref, ctx):
        v = f()
        if "json" in mods:  # as it appears inside a JSON string: newlines escaped
            v = v.replace("\n", "\\n")
        return v
    return g


for _k, _f in V.SECRETS.items():
    LABELLED[_k] = ("SECRET", _secret(_f))

# ------------------------------------------------------------------ unlabelled kinds (hard negatives)
COMPANIES = ["Globex", "Initech", "Hooli", "Contoso", "Vandelay Industries", "Soylent", "Dunder Mifflin",
             "Wayne Enterprises", "Stark Logistics", "Pied Piper", "Aperture Labs", "Tyrell Systems"]
NAMEY_COMPANIES = ["Charles Schwab", "Goldman Sachs", "Morgan Stanley", "Johnson &amp; Johnson",
                   "Ernst &amp; Young", "Dow Jones", "Wells Fargo", "Ben &amp; Jerry's", "Ralph Lauren",
                   "Marks &amp; Spencer", "Procter &amp; Gamble", "Hewlett Packard Enterprise", "Estée Lauder",
                   "Calvin Klein", "Louis Vuitton", "Tommy Hilfiger", "Harley-Davidson", "Rolls-Royce",
                   "Jack Daniel's", "Wendy's", "Dolce &amp; Gabbana", "John Lewis", "Sainsbury's", "Aldi Süd"]
PRODUCTS = ["Jenkins", "Cassandra", "Jasper", "Hugo", "Ada", "Alexa", "Siri", "Watson", "Kafka", "Ruby",
            "Julia", "Django", "Marvin", "Jarvis", "Hubot", "Sentry", "Ansible", "Tomcat", "Casper", "Dolly",
            "Hadoop", "Celery", "Flask", "Airflow", "Grafana", "Loki", "Jaeger", "Harbor", "Argo", "Vault"]
TEAMS = ["team Phoenix", "the Atlas squad", "Hermes", "team Apollo", "the Athena pod", "Orion",
         "the Falcon crew", "Mercury", "Platform", "Growth", "Payments Core", "SRE"]
OFFICES = ["Berlin", "Lisbon", "Austin", "Toronto", "Bengaluru", "Kraków", "Dublin", "London", "São Paulo",
           "Singapore", "Hanoi", "Sydney", "Denver", "Warsaw", "Paris", "Nairobi"]
REGIONS = ["us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-1", "ap-south-1",
           "europe-west3", "us-central1", "westeurope", "eastus2", "sa-east-1", "ca-central-1"]
DCS = ["fra2", "ams3", "iad1", "lhr-4", "sjc02", "nyc3", "dfw-a", "sin1", "gru2", "ord-b"]
GH_ORGS = ["northwind-labs", "acme-corp", "brightpath", "kestrel-ai", "pixelforge"]
REPOS = ["billing-api", "web-app", "infra", "data-pipeline", "mobile", "design-system", "payments-svc",
         "auth-service", "terraform-modules", "etl-jobs", "helm-charts", "docs"]
HOSTS = ["bastion-prod-1", "ip-10-0-3-17.ec2.internal", "build-01", "db-replica-2", "jump.corp",
         "runner-7", "kafka-broker-3", "staging-web-2", "gpu-node-04", "ip-172-31-20-4"]
PLACEHOLDERS = ["&lt;redacted&gt;", "********", "YOUR_API_KEY", "xoxb-your-token", "${DB_PASSWORD}",
                "{{ secrets.STRIPE_KEY }}", "&lt;your-token-here&gt;", "changeme", "sk_live_xxxxxxxxxxxxxxxxxxxx",
                "REPLACE_ME", "[REDACTED]", "${{ secrets.NPM_TOKEN }}", "xxxxxxxx", "{{ .Values.db.password }}",
                "&lt;PASSWORD&gt;", "$API_TOKEN", "%DB_PASS%", "ghp_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
                "AKIAXXXXXXXXXXXXXXXX", "•••••••••"]


def _date_future():
    y = rng.choice([2024, 2025, 2026])
    m, d = rng.randint(1, 12), rng.randint(1, 28)
    return rng.choice([f"{y}-{m:02d}-{d:02d}", f"{m}/{d}/{y}", f"{d} {V.MONTHS[m - 1][:3]}", f"{V.MONTHS[m - 1]} {d}",
                       f"{d:02d}.{m:02d}.{y}", f"{m}/{d}"])


def _ts():
    return rng.choice([
        f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z",
        f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}.{dg(3)}",
        str(rng.randint(1700000000, 1735000000)),
        f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d},{dg(3)}"])


def _slack_id(p):
    return p + rs(rng.choice([8, 10]), string.ascii_uppercase + "0123456789")


def _sshpub():
    return "AAAAC3NzaC1lZDI1NTE5AAAAI" + rs(43, V.B64)


def _cert(kind="CERTIFICATE"):
    first = "MIID" + rs(4) if kind == "CERTIFICATE" else "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"
    n = 8 if kind != "CERTIFICATE" else rng.randint(10, 14)
    body = first + rs(64 * n - len(first) - 20, V.B64)
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return f"-----BEGIN {kind}-----\n" + "\n".join(lines) + f"\n-----END {kind}-----"


def _b64cursor():
    return V.b64(rng.choice(['{"offset":200}', '{"page":3,"size":50}', '{"after":"2024-05-01"}',
                             '{"last_id":88213}', 'v1:cursor:page=4']))


def _meeting():
    return rng.choice([f"{dg(3, True)} {dg(4)} {dg(4)}", f"{dg(3, True)} {dg(3)} {dg(4)}",
                       f"{rs(3, string.ascii_lowercase)}-{rs(4, string.ascii_lowercase)}-{rs(3, string.ascii_lowercase)}",
                       f"{dg(3, True)} {dg(3)} {dg(3)} {dg(3)}"])


def _version4():
    return rng.choice([f"{rng.randint(1, 12)}.{rng.randint(0, 20)}.{rng.randint(0, 40)}.{rng.randint(1, 300)}",
                       f"124.0.{rng.randint(6000, 6500)}.{rng.randint(10, 200)}", f"10.0.{rng.randint(17000, 26000)}.{rng.randint(100, 4000)}"])


def _bcrypt():
    return "$2b$12$" + rs(53, string.ascii_letters + string.digits + "./")


UNLABELLED = {
    "first": lambda m, r, c: rng.choice(V.LONE_GIVEN),
    "first_lc": lambda m, r, c: V.fold(rng.choice(V.LONE_GIVEN)).lower(),
    "company": lambda m, r, c: rng.choice(COMPANIES),
    "namecompany": lambda m, r, c: rng.choice(NAMEY_COMPANIES),
    "finco": lambda m, r, c: rng.choice(["Charles Schwab", "Edward Jones", "Fidelity", "Wells Fargo", "Morgan Stanley", "Goldman Sachs", "Merrill Lynch", "T. Rowe Price"]),
    "company_domain": lambda m, r, c: c.setdefault("_dom", rng.choice(V.WORK_DOMAINS)),
    "product": lambda m, r, c: rng.choice(PRODUCTS),
    "team": lambda m, r, c: rng.choice(TEAMS),
    "office": lambda m, r, c: rng.choice(OFFICES),
    "region": lambda m, r, c: rng.choice(REGIONS),
    "dc": lambda m, r, c: rng.choice(DCS),
    "uuid": lambda m, r, c: str(_uuid.UUID(int=rng.getrandbits(128), version=4)),
    "sha": lambda m, r, c: rs(40, V.HEX),
    "sha7": lambda m, r, c: rs(7, V.HEX),
    "sha256": lambda m, r, c: rs(64, V.HEX),
    "md5": lambda m, r, c: rs(32, V.HEX),
    "trace": lambda m, r, c: rs(32, V.HEX),
    "spanid": lambda m, r, c: rs(16, V.HEX),
    "amzntrace": lambda m, r, c: f"Root=1-{rs(8, V.HEX)}-{rs(24, V.HEX)}",
    "slackuser": lambda m, r, c: _slack_id("U"),
    "slackchan": lambda m, r, c: _slack_id("C"),
    "mention": lambda m, r, c: f"<@{_slack_id('U')}>",
    "chan": lambda m, r, c: f"<#{_slack_id('C')}|{rng.choice(['general', 'eng-backend', 'ops-oncall', 'billing', 'support-escalations', 'hr-private', 'sales-emea', 'random', 'finance', 'it-help', 'security'])}>",
    "pk": lambda m, r, c: "pk_live_" + rs(rng.choice([24, 99])),
    "cus": lambda m, r, c: "cus_" + rs(14),
    "pi": lambda m, r, c: "pi_3" + rs(23),
    "sub": lambda m, r, c: "sub_1" + rs(23),
    "evt": lambda m, r, c: "evt_1" + rs(23),
    "acsid": lambda m, r, c: "AC" + rs(32, V.HEX),
    "smsid": lambda m, r, c: "SM" + rs(32, V.HEX),
    "orderid": lambda m, r, c: rng.choice([f"#{dg(7, True)}", f"ORD-{rng.randint(2023, 2025)}-{dg(5)}", f"{dg(3, True)}-{dg(7)}-{dg(7)}", f"#{rng.randint(1000, 99999)}"]),
    "ticket": lambda m, r, c: f"{rng.choice(['OPS', 'SUP', 'ENG', 'PAY', 'HR', 'SEC', 'INFRA', 'CS'])}-{rng.randint(100, 9999)}",
    "ticketnum": lambda m, r, c: dg(rng.choice([5, 6, 7]), True),
    "meeting": lambda m, r, c: _meeting(),
    "awsacct": lambda m, r, c: dg(12, True),
    "luhnbad": lambda m, r, c: V.luhn_bad16(),
    "last4": lambda m, r, c: dg(4),
    "expiry": lambda m, r, c: rng.choice([f"{rng.randint(1, 12):02d}/{rng.randint(25, 31)}", f"{rng.randint(1, 12):02d}/20{rng.randint(25, 31)}"]),
    "cvv": lambda m, r, c: dg(3),
    "ssn9xx": lambda m, r, c: f"9{dg(2)}-{dg(2)}-{dg(4)}",
    "id323": lambda m, r, c: f"{dg(3)}-{dg(2)}-{dg(3)}",
    "bic": lambda m, r, c: rng.choice(V.BICS),
    "version4": lambda m, r, c: _version4(),
    "semver": lambda m, r, c: f"{rng.randint(0, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 20)}",
    "port": lambda m, r, c: str(rng.choice([3000, 5432, 6379, 8080, 8443, 9092, 27017, 9200, 5672, 3306, 4318])),
    "ts": lambda m, r, c: _ts(),
    "date": lambda m, r, c: _date_future(),
    "num3": lambda m, r, c: str(rng.randint(100, 999)),
    "num4": lambda m, r, c: str(rng.randint(1000, 9999)),
    "num5": lambda m, r, c: str(rng.randint(10000, 99999)),
    "num6": lambda m, r, c: str(rng.randint(100000, 999999)),
    "gh_org": lambda m, r, c: rng.choice(GH_ORGS),
    "repo": lambda m, r, c: rng.choice(REPOS),
    "host": lambda m, r, c: rng.choice(HOSTS),
    "bucket": lambda m, r, c: rng.choice(GH_ORGS) + "-" + rng.choice(["exports", "backups", "logs", "artifacts"]),
    "b64cursor": lambda m, r, c: _b64cursor(),
    "sshpub": lambda m, r, c: _sshpub(),
    "cert": lambda m, r, c: _cert(),
    "pubpem": lambda m, r, c: _cert("PUBLIC KEY"),
    "bcrypt": lambda m, r, c: _bcrypt(),
    "tracking": lambda m, r, c: rng.choice(["1Z" + rs(6, V.UPNUM) + dg(10), dg(12, True), "JD" + dg(16)]),
    "po": lambda m, r, c: f"PO-{rng.randint(2024, 2025)}{dg(4)}",
    "rayid": lambda m, r, c: rs(16, V.HEX) + "-" + rng.choice(["FRA", "IAD", "LHR", "SIN", "GRU"]),
    "ext": lambda m, r, c: str(rng.randint(100, 9999)),
    "azacct": lambda m, r, c: rng.choice(["stprodexports", "northwinddata", "kestrelml01", "acmebackupsweu"]),
    "placeholder": lambda m, r, c: rng.choice(PLACEHOLDERS),
    "gclient": lambda m, r, c: f"{dg(12, True)}-{rs(32, string.ascii_lowercase + string.digits)}.apps.googleusercontent.com",
    "paypal": lambda m, r, c: rs(17, V.UPNUM),
    "dunsish": lambda m, r, c: f"{dg(2)}-{dg(3)}-{dg(4)}",
    "invoice": lambda m, r, c: f"INV-{rng.randint(2023, 2025)}-{dg(4)}",
    "jira": lambda m, r, c: f"{rng.choice(['PLAT', 'WEB', 'DATA', 'MOB'])}-{rng.randint(10, 4000)}",
}


def render(tpl):
    ctx = {}
    out, spans = [], []
    pos = 0
    last = 0

    def emit(text, label):
        nonlocal pos
        if label:
            spans.append({"start": pos, "end": pos + len(text), "label": label})
        out.append(text)
        pos += len(text)

    for m in PH.finditer(tpl):
        emit(tpl[last:m.start()], None)
        last = m.end()
        spec = m.group(1)
        if spec.startswith("="):
            ref = spec[1:]
            if ref.endswith(".first") or ref.endswith(".firstlc"):
                tag, what = ref.rsplit(".", 1)
                g = ctx[tag]["meta"]["given"].split(" ")[0]
                emit(g.lower() if what == "firstlc" else g, None)
            else:
                emit(ctx[ref]["text"], ctx[ref]["label"])
            continue
        tag = ref = None
        if ":" in spec:
            spec, tag = spec.split(":", 1)
        if "@" in spec:
            spec, ref = spec.split("@", 1)
        kind, *mods = spec.split(".")
        if kind in LABELLED:
            label, fn = LABELLED[kind]
        elif kind in UNLABELLED:
            label, fn = None, UNLABELLED[kind]
        else:
            raise KeyError(f"unknown kind {kind!r} in template {tpl[:60]!r}")
        res = fn(mods, ref, ctx)
        meta = None
        if isinstance(res, tuple):
            res, meta = res
        if isinstance(res, list):
            for t, l in res:
                emit(t, l)
            text = "".join(t for t, _ in res)
        else:
            emit(res, label)
            text = res
        if tag:
            ctx[tag] = {"text": text, "label": label, "meta": meta}
    emit(tpl[last:], None)
    return "".join(out), spans
