-- wrk script: POST /collections/m/points/query with bodies from the file in $BODIES, one per line, in turn.
local bodies = {}
for line in io.lines(os.getenv("BODIES")) do bodies[#bodies + 1] = line end
local i = 0
request = function()
    i = i % #bodies + 1
    return wrk.format("POST", "/collections/m/points/query", { ["Content-Type"] = "application/json" }, bodies[i])
end
