#!/usr/bin/env python3
"""Qdrant's official Python client against a running `vq serve` (URL in argv[1]).

Exercises what applications do: create, upsert (int and UUID ids, payloads), get,
search with a filter, query, scroll with pagination, count, payload update,
delete, payload indexes (keyword, integer, text), a text match, a facet, an
order_by scroll with a with_payload selector, aliases, recommendations,
discovery and context search, RRF fusion over prefetches, grouped search,
update vectors, a batch update, named vectors (a point lacking one, search by
`using`, update and delete of one vector), a sparse + dense hybrid query with
RRF, collection update and delete. Exits non-zero on the first mismatch.
"""
import sys
import uuid

from qdrant_client import QdrantClient, models

url = sys.argv[1]
client = QdrantClient(url=url, prefer_grpc=False, timeout=10)
name = "compat"

assert not client.collection_exists(name)
client.create_collection(name, vectors_config=models.VectorParams(size=4, distance=models.Distance.COSINE), timeout=30)
assert client.collection_exists(name)
info = client.get_collection(name)
assert info.config.params.vectors.size == 4, info
assert info.config.params.vectors.distance == models.Distance.COSINE
assert info.update_queue is not None and info.update_queue.length == 0, info

u = str(uuid.UUID("550e8400-e29b-41d4-a716-446655440000"))
points = [models.PointStruct(id=i, vector=[1.0, i / 10, 0.0, 0.5], payload={"city": "Paris" if i % 2 else "Rome", "n": i})
          for i in range(1, 21)]
points.append(models.PointStruct(id=u, vector=[0.0, 1.0, 0.0, 0.0], payload={"city": "Oslo", "n": 100}))
r = client.upsert(name, points=points, wait=True)
assert r.status == models.UpdateStatus.COMPLETED, r

got = client.retrieve(name, ids=[1, u], with_payload=True, with_vectors=True)
assert sorted(str(p.id) for p in got) == sorted(["1", u]), got
assert next(p for p in got if str(p.id) == u).payload["city"] == "Oslo"

hits = client.query_points(name, query=[1.0, 0.1, 0.0, 0.5], limit=3,
                           query_filter=models.Filter(must=[models.FieldCondition(key="city", match=models.MatchValue(value="Paris"))]),
                           with_payload=True).points
assert len(hits) == 3 and all(h.payload["city"] == "Paris" for h in hits), hits
assert hits[0].id == 1 and hits[0].score >= hits[1].score, hits

near = client.query_points(name, query=[0.0, 1.0, 0.0, 0.0], limit=1, timeout=5).points
assert str(near[0].id) == u, near

ranged = client.count(name, count_filter=models.Filter(must=[models.FieldCondition(key="n", range=models.Range(gte=5, lt=10))]))
assert ranged.count == 5, ranged
assert client.count(name).count == 21

seen, offset = [], None
while True:
    page, offset = client.scroll(name, limit=6, offset=offset, with_payload=False)
    seen += [str(p.id) for p in page]
    if offset is None:
        break
assert len(seen) == 21 and len(set(seen)) == 21, seen

client.set_payload(name, payload={"tag": "new"}, points=[1, 2], wait=True)
assert client.retrieve(name, ids=[1])[0].payload == {"city": "Paris", "n": 1, "tag": "new"}
client.delete_payload(name, keys=["tag"], points=[1], wait=True)
assert "tag" not in client.retrieve(name, ids=[1])[0].payload

client.delete(name, points_selector=models.PointIdsList(points=[2, 3]), wait=True)
assert client.count(name).count == 19
client.delete(name, points_selector=models.FilterSelector(filter=models.Filter(must=[models.FieldCondition(key="city", match=models.MatchValue(value="Oslo"))])), wait=True)
assert client.count(name).count == 18

# Payload indexes, a text match, a facet and an order_by scroll.
r = client.create_payload_index(name, field_name="city", field_schema=models.PayloadSchemaType.KEYWORD, wait=True)
assert r.status == models.UpdateStatus.COMPLETED, r
client.create_payload_index(name, field_name="n", field_schema=models.IntegerIndexParams(type=models.IntegerIndexType.INTEGER, lookup=True, range=True), wait=True)
client.set_payload(name, payload={"text": "cheap vector search"}, points=[4], wait=True)
client.create_payload_index(name, field_name="text", field_schema=models.TextIndexParams(type=models.TextIndexType.TEXT, tokenizer=models.TokenizerType.WORD, lowercase=True), wait=True)
schema = client.get_collection(name).payload_schema
assert schema["city"].data_type == models.PayloadSchemaType.KEYWORD and schema["city"].points == 18, schema
assert schema["n"].data_type == models.PayloadSchemaType.INTEGER, schema
text = client.scroll(name, scroll_filter=models.Filter(must=[models.FieldCondition(key="text", match=models.MatchText(text="Vector"))]))[0]
assert [p.id for p in text] == [4], text
facet = client.facet(name, key="city", limit=10, exact=True)
assert [(h.value, h.count) for h in facet.hits] == [("Paris", 9), ("Rome", 9)], facet
ordered, _ = client.scroll(name, limit=3, order_by=models.OrderBy(key="n", direction=models.Direction.DESC), with_payload=["n"])
assert [p.payload["n"] for p in ordered] == [20, 19, 18], ordered
assert all(set(p.payload) == {"n"} for p in ordered), ordered
client.delete_payload_index(name, field_name="text", wait=True)
assert "text" not in client.get_collection(name).payload_schema

# Aliases: create, use, list, delete.
assert client.update_collection_aliases(change_aliases_operations=[
    models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name=name, alias_name="compat-alias"))])
assert client.count("compat-alias").count == 18
assert [(a.alias_name, a.collection_name) for a in client.get_aliases().aliases] == [("compat-alias", name)]
assert [a.alias_name for a in client.get_collection_aliases(name).aliases] == ["compat-alias"]
client.update_collection_aliases(change_aliases_operations=[models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name="compat-alias"))], timeout=30)
assert client.get_aliases().aliases == []

# Recommendations from example ids (the examples are not returned).
rec = client.query_points(name, query=models.RecommendQuery(recommend=models.RecommendInput(positive=[1], negative=[4])), limit=3).points
assert len(rec) == 3 and all(p.id not in (1, 4) for p in rec), rec
best = client.query_points(name, query=models.RecommendQuery(recommend=models.RecommendInput(
    positive=[1], strategy=models.RecommendStrategy.BEST_SCORE)), limit=2).points
assert len(best) == 2 and best[0].score >= best[1].score, best

# Discovery and context search.
found = client.query_points(name, query=models.DiscoverQuery(discover=models.DiscoverInput(
    target=[1.0, 0.5, 0.0, 0.5], context=[models.ContextPair(positive=1, negative=4)])), limit=3).points
assert len(found) == 3 and all(p.id not in (1, 4) for p in found), found
ctx = client.query_points(name, query=models.ContextQuery(context=[models.ContextPair(positive=1, negative=4)]), limit=2).points
assert len(ctx) == 2, ctx

# Prefetch and fusion (RRF), and grouped search.
fused = client.query_points(name, prefetch=[models.Prefetch(query=[1.0, 0.1, 0.0, 0.5], limit=5),
                                            models.Prefetch(query=[1.0, 0.9, 0.0, 0.5], limit=5)],
                            query=models.FusionQuery(fusion=models.Fusion.RRF), limit=3).points
assert len(fused) == 3 and fused[0].score >= fused[1].score >= fused[2].score, fused
grouped = client.query_points_groups(name, query=[1.0, 0.5, 0.0, 0.5], group_by="city", group_size=2, limit=2).groups
assert len(grouped) == 2 and all(1 <= len(g.hits) <= 2 for g in grouped), grouped

# Update vectors (payload kept) and a batch of operations, in order.
client.update_vectors(name, points=[models.PointVectors(id=5, vector=[0.0, 0.0, 2.0, 0.0])], wait=True)
five = client.retrieve(name, ids=[5], with_vectors=True)[0]
assert five.payload["n"] == 5 and [round(x, 5) for x in five.vector] == [0.0, 0.0, 1.0, 0.0], five
results = client.batch_update_points(name, update_operations=[
    models.UpsertOperation(upsert=models.PointsList(points=[models.PointStruct(id=50, vector=[0.5, 0.5, 0.5, 0.5], payload={"n": 50})])),
    models.SetPayloadOperation(set_payload=models.SetPayload(payload={"b": 1}, points=[50])),
    models.DeleteOperation(delete=models.PointIdsList(points=[50])),
], wait=True)
assert len(results) == 3 and all(r.status == models.UpdateStatus.COMPLETED for r in results), results
assert client.count(name).count == 18 and client.retrieve(name, ids=[50]) == []

client.update_collection(name, optimizers_config=models.OptimizersConfigDiff(indexing_threshold=20000), timeout=30)
assert client.get_collection(name).config.optimizer_config.indexing_threshold == 20000

# Named vectors: each searched by `using`; a point may lack one; one vector updated or deleted.
named = "compat_named"
client.create_collection(named, vectors_config={
    "image": models.VectorParams(size=2, distance=models.Distance.DOT),
    "text": models.VectorParams(size=3, distance=models.Distance.COSINE, hnsw_config=models.HnswConfigDiff(m=8)),
})
params = client.get_collection(named).config.params.vectors
assert params["image"].size == 2 and params["text"].distance == models.Distance.COSINE, params
client.upsert(named, points=[
    models.PointStruct(id=1, vector={"image": [1.0, 0.0], "text": [1.0, 0.0, 0.0]}),
    models.PointStruct(id=2, vector={"image": [0.0, 1.0]}),
    models.PointStruct(id=3, vector={"image": [0.5, 0.5], "text": [0.0, 1.0, 0.0]}),
], wait=True)
assert [p.id for p in client.query_points(named, query=[0.0, 1.0], using="image", limit=3).points] == [2, 3, 1]
by_text = client.query_points(named, query=[0.0, 1.0, 0.0], using="text", limit=3, with_vectors=["text"]).points
assert [p.id for p in by_text] == [3, 1] and set(by_text[0].vector) == {"text"}, by_text
client.update_vectors(named, points=[models.PointVectors(id=2, vector={"text": [0.0, 0.0, 3.0]})], wait=True)
two = client.retrieve(named, ids=[2], with_vectors=True)[0]
assert two.vector["image"] == [0.0, 1.0] and two.vector["text"] == [0.0, 0.0, 1.0], two
client.delete_vectors(named, vectors=["text"], points=[1], wait=True)
assert set(client.retrieve(named, ids=[1], with_vectors=True)[0].vector) == {"image"}
near2 = client.query_points(named, query=2, using="text", limit=3).points
assert [p.id for p in near2] == [3], near2  # the point queried by is left out, as in Qdrant
client.delete_collection(named, timeout=30)

# Sparse + dense hybrid: RRF over a dense and a sparse prefetch, as computed here from each list.
hybrid = "compat_hybrid"
client.create_collection(hybrid, vectors_config={"dense": models.VectorParams(size=2, distance=models.Distance.COSINE)},
                         sparse_vectors_config={"text": models.SparseVectorParams(modifier=models.Modifier.IDF)})
assert client.get_collection(hybrid).config.params.sparse_vectors["text"].modifier == models.Modifier.IDF
client.upsert(hybrid, points=[
    models.PointStruct(id=i, vector={"dense": [1.0, i / 10],
                                     "text": models.SparseVector(indices=[i % 4, 10 + i % 3], values=[1.0, i / 5 + 0.1])})
    for i in range(1, 13)
], wait=True)
sparse_hits = client.query_points(hybrid, query=models.SparseVector(indices=[1, 11], values=[1.0, 1.0]), using="text", limit=5).points
assert sparse_hits and all(p.id % 4 == 1 or p.id % 3 == 1 for p in sparse_hits), sparse_hits  # each shares index 1 or 11
dense_hits = client.query_points(hybrid, query=[1.0, 0.6], using="dense", limit=5).points
fused = client.query_points(hybrid, prefetch=[
    models.Prefetch(query=models.SparseVector(indices=[1, 11], values=[1.0, 1.0]), using="text", limit=5),
    models.Prefetch(query=[1.0, 0.6], using="dense", limit=5),
], query=models.FusionQuery(fusion=models.Fusion.RRF), limit=4).points
rrf = {}
for hits in (sparse_hits, dense_hits):
    for rank, p in enumerate(hits):
        rrf[p.id] = rrf.get(p.id, 0) + 1 / (rank + 2)
want = [i for i, _ in sorted(rrf.items(), key=lambda e: (-e[1], e[0]))][:4]
assert [p.id for p in fused] == want, (fused, want)
got = client.retrieve(hybrid, ids=[5], with_vectors=True)[0].vector["text"]
assert got.indices == [1, 12] and abs(got.values[1] - 1.1) < 1e-6, got
client.delete_collection(hybrid)

assert any(c.name == name for c in client.get_collections().collections)
client.delete_collection(name)
assert not client.collection_exists(name)
print("qdrant-client compatibility: all checks passed")
