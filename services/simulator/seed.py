"""Pre-confirmed store histories: the demo seed and helpers for tests and benchmarks.

The demo seed (`seed='demo'`) gives a fresh simulator a believable CADT network owned by
key 1, built instantly (no blocks waited for):

- a governance body: the main store `{v2: <version store id>}` and the v2 version store with
  `orgList` `[{orgUid}]`, `pickList` (registries, projectSector, unitType, unitStatus,
  countries, coBenefits, ...) and `glossary` (term -> definition);
- three organizations, each with its four stores: the org store (`registryId` = its
  data-model-version store, `fileStoreId`, `name`, `icon`, `meta_*`), the data-model-version
  store (`v2` -> registry store), the registry store with 20+ generations of inserts, updates
  and deletes of CADT records (`project|<uuid>`, `unit|<uuid>`, ... with camelCase JSON, and
  `comment`/`author` on every commit) and an empty file store;
- a confirmed mirror at `DEMO_MIRROR_URL` on every demo store.

Store ids are fixed (sha256 of a label) so the gateway can default its governance body to
`DEMO_GOVERNANCE_BODY_ID`. Every key and value is hex-encoded UTF-8.

For tests: `create_owned_store` writes any history directly; `build_store_history` makes a
synthetic CADT-like store of N generations x M changes fast (1,000 x 100 in about a second).
"""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from services.simulator.state import Mirror, SimulatorState, Store

#: The key that owns every demo store (the gateway's own node is key 0).
DEMO_OWNER_KEY = 1
#: The mirror URL announced for every demo store.
DEMO_MIRROR_URL = "http://127.0.0.1:8575"
#: Seconds between seeded generations (history starts this many steps before now).
DEMO_SPACING_SECONDS = 3600


def demo_store_id(label: str) -> str:
    """The fixed id of a demo store."""
    return hashlib.sha256(f"cadt-gateway-simulator/demo/{label}".encode()).hexdigest()


@dataclass(frozen=True)
class DemoOrganization:
    """The four stores of one seeded organization."""

    name: str
    org_uid: str
    data_model_version_store_id: str
    registry_store_id: str
    file_store_id: str
    country: str
    registry: str


def _demo_org(slug: str, name: str, country: str, registry: str) -> DemoOrganization:
    return DemoOrganization(
        name=name,
        org_uid=demo_store_id(f"org/{slug}"),
        data_model_version_store_id=demo_store_id(f"org/{slug}/data-model-version"),
        registry_store_id=demo_store_id(f"org/{slug}/registry-v2"),
        file_store_id=demo_store_id(f"org/{slug}/file-store"),
        country=country,
        registry=registry,
    )


#: The governance body's main store (what CADT_GOVERNANCE_BODY_ID points at).
DEMO_GOVERNANCE_BODY_ID = demo_store_id("governance/main")
#: The governance body's v2 version store (orgList, pickList, glossary).
DEMO_GOVERNANCE_VERSION_STORE_ID = demo_store_id("governance/v2")
DEMO_ORGANIZATIONS: tuple[DemoOrganization, ...] = (
    _demo_org("andes-forest", "Andes Forest Carbon Registry", "Peru", "Verra"),
    _demo_org("pacific-blue", "Pacific Blue Carbon Trust", "Fiji", "Gold Standard"),
    _demo_org("nordic-ccs", "Nordic Carbon Removal Office", "Norway", "Puro.earth"),
)
#: orgUids of the seeded organizations (their org store ids).
DEMO_ORG_UIDS: tuple[str, ...] = tuple(org.org_uid for org in DEMO_ORGANIZATIONS)

PICK_LIST: dict[str, list[str]] = {
    "registries": [
        "Verra",
        "Gold Standard",
        "American Carbon Registry",
        "Climate Action Reserve",
        "Puro.earth",
        "Global Carbon Council",
    ],
    "projectSector": [
        "Agriculture Forestry and Other Land Use",
        "Energy industries",
        "Waste handling and disposal",
        "Carbon capture and storage",
        "Transport",
    ],
    "projectType": [
        "Afforestation",
        "Reforestation",
        "Avoided Deforestation",
        "Mangrove Restoration",
        "Direct Air Capture",
        "Biochar",
        "Improved Cookstoves",
    ],
    "unitType": [
        "Removal - nature",
        "Removal - technical",
        "Reduction - nature",
        "Reduction - technical",
        "Avoidance",
    ],
    "unitStatus": [
        "Held",
        "For Sale",
        "Retired",
        "Cancelled",
        "Expired",
        "Buffer",
        "Pending Export",
        "Exported",
    ],
    "unitMetric": ["tCO2e"],
    "projectStatusValues": [
        "Listed",
        "Registered",
        "Validated",
        "Authorized",
        "Completed",
        "Withdrawn",
        "Transitioned",
    ],
    "verificationBody": ["SCS Global Services", "Bureau Veritas", "DNV", "TÜV SÜD", "Aster Global"],
    "validationBody": ["SCS Global Services", "Bureau Veritas", "DNV", "TÜV SÜD", "Aster Global"],
    "methodology": ["VM0007", "VM0033", "AR-ACM0003", "GS TPDDTEC", "Puro Biochar 2022"],
    "countries": [
        "Peru",
        "Fiji",
        "Norway",
        "Brazil",
        "Kenya",
        "Indonesia",
        "Colombia",
        "India",
        "United States of America",
    ],
    "ratingType": ["BeZero", "Sylvera", "Calyx Global"],
    "labelType": ["Certification", "Endorsement", "Letter of Qualification"],
    "coBenefits": [
        "Biodiversity",
        "Clean water",
        "Gender equality",
        "Local employment",
        "Soil health",
        "Community resilience",
    ],
    "correspondingAdjustmentDeclaration": ["Committed", "Not Required", "Unknown"],
    "correspondingAdjustmentStatus": ["Not Started", "Pending", "Completed"],
    "inCountryRegion": ["Amazonas", "Viti Levu", "Vestland", "Loreto", "Madre de Dios"],
}

GLOSSARY: dict[str, str] = {
    "Warehouse Project ID": "The identifier CADT gives a project, unique across every registry.",
    "Corresponding adjustment": (
        "An accounting entry that keeps a unit from being counted by two countries (Article 6)."
    ),
    "Vintage year": "The year in which the emission reduction or removal behind a unit happened.",
    "Serial number block": "The range of serial numbers a registry assigned to a block of units.",
    "Issuance": "A registry creating units for a verified monitoring period of a project.",
    "Retirement": "Removing a unit from circulation for good so that it counts toward a claim.",
    "Label": "A certification, endorsement or qualification attached to a set of units.",
    "Governance body": "The organization that publishes the pick lists, glossary and member list.",
}


# ---------------------------------------------------------------------------------- encoding
def hex_text(text: str) -> str:
    """UTF-8 text as bare hex (how CADT writes keys and values)."""
    return text.encode("utf-8").hex()


def hex_json(value: Any) -> str:
    """A JSON document as bare hex UTF-8."""
    return hex_text(json.dumps(value, separators=(",", ":"), ensure_ascii=False))


def insert(key: str, value: Any) -> dict[str, str]:
    """An insert change of a text key and a text or JSON value."""
    encoded = hex_text(value) if isinstance(value, str) else hex_json(value)
    return {"action": "insert", "key": hex_text(key), "value": encoded}


def upsert(key: str, value: Any) -> dict[str, str]:
    """An upsert change of a text key and a text or JSON value."""
    encoded = hex_text(value) if isinstance(value, str) else hex_json(value)
    return {"action": "upsert", "key": hex_text(key), "value": encoded}


def delete(key: str) -> dict[str, str]:
    """A delete change of a text key."""
    return {"action": "delete", "key": hex_text(key)}


# ---------------------------------------------------------------------------------- writing
def create_owned_store(
    state: SimulatorState,
    owner_key: int,
    generations: Iterable[Sequence[dict[str, Any]]],
    *,
    store_id: str | None = None,
    mirror_urls: Sequence[str] = (),
    start_time: int | None = None,
    spacing_seconds: int = 0,
) -> str:
    """Write a confirmed store with these changelists as generations 1..N (no blocks waited).

    Heights continue the chain (one per generation); timestamps start at `start_time`
    (default: now) and step by `spacing_seconds`, so pass a start in the past for a history.
    """
    owner = state.key(owner_key)
    owner.dl_wallet = True
    store_id = store_id or state.new_id("store")
    if store_id in state.stores:
        raise ValueError(f"store {store_id} already exists")
    timestamp = state.now() if start_time is None else start_time
    store = Store(store_id, owner_key, timestamp)
    state.stores[store_id] = store
    state.height += 1
    store.data.launch(timestamp=timestamp, height=state.height)
    for changelist in generations:
        timestamp += spacing_seconds
        state.height += 1
        store.data.commit(
            store.data.plan(list(changelist)), timestamp=timestamp, height=state.height
        )
    for url in mirror_urls:
        mirror_id = state.new_id("mirror")
        state.mirrors[mirror_id] = Mirror(
            coin_id=mirror_id,
            launcher_id=store_id,
            urls=[url.rstrip("/")],
            amount=300,
            creator_key=owner_key,
            confirmed_at_height=state.height,
        )
    state.last_timestamp = max(state.last_timestamp, timestamp)
    state.dirty = True
    return store_id


def synthetic_changelists(
    generations: int, changes_per_generation: int, *, seed: int = 0, org_uid: str = "bench-org"
) -> Iterable[list[dict[str, str]]]:
    """CADT-like changelists: mostly new projects and units, some updates and deletes."""
    rng = random.Random(seed)
    live: list[str] = []
    for number in range(1, generations + 1):
        changes: list[dict[str, str]] = []
        touched: set[str] = set()
        while len(changes) < changes_per_generation - 2:
            roll = rng.random()
            if live and roll < 0.1:
                key = live.pop(rng.randrange(len(live)))
                if key in touched:
                    continue
                changes.append({"action": "delete", "key": key})
            elif live and roll < 0.3:
                key = live[rng.randrange(len(live))]
                if key in touched:
                    continue
                changes.append(
                    {
                        "action": "upsert",
                        "key": key,
                        "value": _synthetic_value(rng, key, org_uid, number),
                    }
                )
            else:
                table = "project" if rng.random() < 0.3 else "unit"
                key = hex_text(f"{table}|{uuid.UUID(int=rng.getrandbits(128), version=4)}")
                live.append(key)
                changes.append(
                    {
                        "action": "insert",
                        "key": key,
                        "value": _synthetic_value(rng, key, org_uid, number),
                    }
                )
            touched.add(changes[-1]["key"])
        changes.append(upsert("comment", {"comment": f"Synthetic commit {number}"}))
        changes.append(upsert("author", {"author": "bench"}))
        yield changes


def _synthetic_value(rng: random.Random, key: str, org_uid: str, generation: int) -> str:
    record_id = bytes.fromhex(key).decode().split("|", 1)[1]
    return hex_json(
        {
            "warehouseProjectId": record_id,
            "orgUid": org_uid,
            "projectName": f"Project {record_id[:8]}",
            "unitCount": rng.randrange(1, 100_000),
            "vintageYear": 2015 + rng.randrange(10),
            "rev": generation,
        }
    )


def build_store_history(
    state: SimulatorState,
    *,
    owner_key: int = 1,
    generations: int = 1000,
    changes_per_generation: int = 100,
    seed: int = 0,
    store_id: str | None = None,
    mirror_urls: Sequence[str] = (),
) -> str:
    """A store owned by `owner_key` with `generations` synthetic generations; its id."""
    start = state.now() - generations
    return create_owned_store(
        state,
        owner_key,
        synthetic_changelists(generations, changes_per_generation, seed=seed),
        store_id=store_id,
        mirror_urls=mirror_urls,
        start_time=start,
        spacing_seconds=1,
    )


# ---------------------------------------------------------------------------------- demo seed
def apply_demo_seed(state: SimulatorState) -> None:
    """Write the demo governance body and organizations (owned by key 1) into `state`."""
    if DEMO_GOVERNANCE_BODY_ID in state.stores:
        return
    histories: list[tuple[str, list[list[dict[str, Any]]]]] = []
    histories.append((DEMO_GOVERNANCE_BODY_ID, [[insert("v2", DEMO_GOVERNANCE_VERSION_STORE_ID)]]))
    histories.append((DEMO_GOVERNANCE_VERSION_STORE_ID, _governance_generations()))
    for index, org in enumerate(DEMO_ORGANIZATIONS):
        histories.append((org.org_uid, _org_store_generations(org)))
        histories.append((org.data_model_version_store_id, [[insert("v2", org.registry_store_id)]]))
        histories.append((org.registry_store_id, _registry_generations(org, seed=index)))
        histories.append((org.file_store_id, []))
    steps = sum(len(generations) + 1 for _id, generations in histories)
    clock = state.now() - (steps + 1) * DEMO_SPACING_SECONDS
    for store_id, generations in histories:
        create_owned_store(
            state,
            DEMO_OWNER_KEY,
            generations,
            store_id=store_id,
            mirror_urls=[DEMO_MIRROR_URL],
            start_time=clock,
            spacing_seconds=DEMO_SPACING_SECONDS,
        )
        clock += (len(generations) + 1) * DEMO_SPACING_SECONDS
    state.last_timestamp = max(state.last_timestamp, state.now())


def _governance_generations() -> list[list[dict[str, Any]]]:
    org_list = [{"orgUid": uid} for uid in DEMO_ORG_UIDS]
    first_pick_list = {name: values for name, values in PICK_LIST.items() if name != "ratingType"}
    return [
        [
            insert("orgList", json.dumps(org_list[:2], separators=(",", ":"))),
            insert(
                "pickList", json.dumps(first_pick_list, separators=(",", ":"), ensure_ascii=False)
            ),
            insert("glossary", json.dumps(GLOSSARY, separators=(",", ":"), ensure_ascii=False)),
        ],
        [
            upsert("orgList", json.dumps(org_list, separators=(",", ":"))),
            upsert("pickList", json.dumps(PICK_LIST, separators=(",", ":"), ensure_ascii=False)),
        ],
    ]


def _org_store_generations(org: DemoOrganization) -> list[list[dict[str, Any]]]:
    slug = org.name.lower().replace(" ", "-")
    icon = f"https://climate-warehouse.example/icons/{slug}.svg"
    return [
        [
            insert("registryId", org.data_model_version_store_id),
            insert("fileStoreId", org.file_store_id),
            insert("name", org.name),
            insert("icon", icon),
        ],
        [
            insert("meta_website", f"https://{slug}.example"),
            insert("meta_country", org.country),
            insert("meta_contactEmail", f"registry@{slug}.example"),
        ],
    ]


class _RegistryWriter:
    """Builds a registry history commit by commit, keeping the live records consistent."""

    def __init__(self, org: DemoOrganization, seed: int) -> None:
        self.org = org
        self.rng = random.Random(f"cadt-demo-{seed}")
        self.records: dict[str, dict[str, Any]] = {}
        self.projects: list[str] = []
        self.units: list[str] = []
        self.benefits: list[str] = []
        self.commits: list[list[dict[str, Any]]] = []
        self.pending: dict[str, dict[str, Any] | None] = {}

    def uid(self) -> str:
        """A deterministic uuid4 string."""
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def put(self, table: str, record_id: str, record: dict[str, Any]) -> None:
        """Stage an insert or update of a record."""
        self.pending[f"{table}|{record_id}"] = record

    def drop(self, table: str, record_id: str) -> None:
        """Stage the deletion of a record."""
        self.pending[f"{table}|{record_id}"] = None

    def commit(self, comment: str, author: str) -> None:
        """Turn the staged records into one changelist with comment and author."""
        changes: list[dict[str, Any]] = []
        for key, record in self.pending.items():
            exists = key in self.records
            if record is None:
                if exists:
                    changes.append(delete(key))
                    del self.records[key]
            else:
                changes.append(upsert(key, record) if exists else insert(key, record))
                self.records[key] = record
        changes.append(upsert("comment", {"comment": comment}))
        changes.append(upsert("author", {"author": author}))
        self.commits.append(changes)
        self.pending = {}

    def add_project(self, number: int) -> str:
        """Stage a project with its location, estimation and co-benefit."""
        org = self.org
        project_id = self.uid()
        rng = self.rng
        project_type = rng.choice(PICK_LIST["projectType"])
        self.put(
            "project",
            project_id,
            {
                "warehouseProjectId": project_id,
                "orgUid": org.org_uid,
                "currentRegistry": org.registry,
                "registryOfOrigin": org.registry,
                "projectId": f"{org.registry[:3].upper()}-{1000 + number}",
                "originProjectId": f"{org.registry[:3].upper()}-{1000 + number}",
                "program": f"{org.registry} Program",
                "projectName": f"{org.country} {project_type} {number}",
                "projectLink": f"https://registry.example/projects/{1000 + number}",
                "projectDeveloper": f"{org.country} Climate Partners",
                "sector": rng.choice(PICK_LIST["projectSector"]),
                "projectType": project_type,
                "projectTags": "demo",
                "coveredByNDC": rng.choice(["Inside NDC", "Outside NDC", "Unknown"]),
                "ndcInformation": "Contributes to the national forest target",
                "projectStatus": "Listed",
                "projectStatusDate": f"202{rng.randrange(0, 4)}-0{rng.randrange(1, 9)}-15",
                "unitMetric": "tCO2e",
                "methodology": rng.choice(PICK_LIST["methodology"]),
                "validationBody": rng.choice(PICK_LIST["validationBody"]),
                "validationDate": f"202{rng.randrange(0, 4)}-11-30",
                "description": f"A {project_type.lower()} project in {org.country}.",
            },
        )
        location_id = self.uid()
        self.put(
            "projectLocation",
            location_id,
            {
                "id": location_id,
                "warehouseProjectId": project_id,
                "orgUid": org.org_uid,
                "country": org.country,
                "inCountryRegion": rng.choice(PICK_LIST["inCountryRegion"]),
                "geographicIdentifier": f"{rng.uniform(-20, 60):.4f},{rng.uniform(-80, 180):.4f}",
            },
        )
        estimation_id = self.uid()
        self.put(
            "estimation",
            estimation_id,
            {
                "id": estimation_id,
                "warehouseProjectId": project_id,
                "creditingPeriodStart": "2021-01-01",
                "creditingPeriodEnd": "2030-12-31",
                "unitCount": rng.randrange(50_000, 500_000),
            },
        )
        benefit_id = self.uid()
        self.put(
            "coBenefit",
            benefit_id,
            {
                "id": benefit_id,
                "warehouseProjectId": project_id,
                "cobenefit": rng.choice(PICK_LIST["coBenefits"]),
            },
        )
        self.benefits.append(benefit_id)
        self.projects.append(project_id)
        return project_id

    def issue(self, project_id: str) -> None:
        """Stage an issuance of a project and one or two unit blocks."""
        org = self.org
        rng = self.rng
        issuance_id = self.uid()
        year = 2018 + rng.randrange(0, 6)
        self.put(
            "issuance",
            issuance_id,
            {
                "id": issuance_id,
                "orgUid": org.org_uid,
                "warehouseProjectId": project_id,
                "startDate": f"{year}-01-01",
                "endDate": f"{year}-12-31",
                "verificationApproach": "Full verification",
                "verificationReportDate": f"{year + 1}-03-31",
                "verificationBody": rng.choice(PICK_LIST["verificationBody"]),
            },
        )
        start = rng.randrange(1, 900_000)
        for _ in range(rng.randrange(1, 3)):
            count = rng.randrange(500, 20_000)
            unit_id = self.uid()
            self.put(
                "unit",
                unit_id,
                {
                    "warehouseUnitId": unit_id,
                    "issuanceId": issuance_id,
                    "orgUid": org.org_uid,
                    "unitOwner": f"{org.country} Climate Partners",
                    "countryJurisdictionOfOwner": org.country,
                    "serialNumberBlock": f"{start}-{start + count - 1}",
                    "unitBlockStart": str(start),
                    "unitBlockEnd": str(start + count - 1),
                    "unitCount": count,
                    "vintageYear": year,
                    "unitType": rng.choice(PICK_LIST["unitType"]),
                    "marketplace": "None",
                    "unitStatus": "Held",
                    "unitRegistryLink": f"https://registry.example/units/{unit_id}",
                    "correspondingAdjustmentDeclaration": rng.choice(
                        PICK_LIST["correspondingAdjustmentDeclaration"]
                    ),
                    "correspondingAdjustmentStatus": "Not Started",
                },
            )
            self.units.append(unit_id)
            start += count

    def label(self, project_id: str) -> None:
        """Stage a label for a project."""
        label_id = self.uid()
        self.put(
            "label",
            label_id,
            {
                "id": label_id,
                "warehouseProjectId": project_id,
                "orgUid": self.org.org_uid,
                "label": f"{self.rng.choice(['CCP-Approved', 'CORSIA Eligible', 'ICVCM'])}",
                "labelType": self.rng.choice(PICK_LIST["labelType"]),
                "creditingPeriodStartDate": "2021-01-01",
                "creditingPeriodEndDate": "2030-12-31",
                "validityPeriodStartDate": "2023-01-01",
                "validityPeriodEndDate": "2028-12-31",
                "unitQuantity": self.rng.randrange(1_000, 50_000),
                "labelLink": "https://labels.example/ccp",
            },
        )

    def update(self, table: str, record_id: str, **fields: Any) -> None:
        """Stage changed fields of an existing record."""
        key = f"{table}|{record_id}"
        record = dict(self.pending.get(key) or self.records[key])
        record.update(fields)
        self.pending[key] = record


def _registry_generations(org: DemoOrganization, *, seed: int) -> list[list[dict[str, Any]]]:
    writer = _RegistryWriter(org, seed)
    authors = ["registry-admin", "data-steward", "api-sync"]
    for number in range(1, 4):
        writer.add_project(number)
    writer.commit("Initial project listings", authors[0])
    for project_id in writer.projects:
        writer.update("project", project_id, projectStatus="Registered")
    writer.commit("Projects registered after validation", authors[1])
    step = 3
    while len(writer.commits) < 22:
        rng = writer.rng
        project_id = rng.choice(writer.projects)
        move = len(writer.commits) % 6
        if move == 2:
            writer.issue(project_id)
            message = "Issuance recorded with its units"
        elif move == 3:
            unit_id = rng.choice(writer.units)
            writer.update(
                "unit", unit_id, unitStatus="Retired", retirementBeneficiary="Demo Airline Ltd"
            )
            message = "Units retired"
        elif move == 4:
            writer.label(project_id)
            writer.update("project", project_id, projectStatus="Authorized")
            message = "Label attached and project authorized"
        elif move == 5:
            if len(writer.units) > 1:
                writer.drop("unit", writer.units.pop(rng.randrange(len(writer.units))))
                message = "Erroneous unit block removed"
            else:
                writer.drop("coBenefit", writer.benefits.pop(rng.randrange(len(writer.benefits))))
                message = "Co-benefit withdrawn"
        elif move == 0:
            step += 1
            writer.add_project(step)
            message = "New project listed"
        else:
            writer.update(
                "project",
                project_id,
                description=f"Updated monitoring report {len(writer.commits)}",
            )
            message = "Project description updated"
        # Vary both so every commit's diff carries its comment and author keys.
        number = len(writer.commits) + 1
        writer.commit(f"{message} (commit {number})", authors[number % len(authors)])
    return writer.commits
