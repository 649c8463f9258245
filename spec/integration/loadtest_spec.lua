-- The load-test runner's command line (bench/loadtest.lua): mistakes stop it
-- with exit status 2 and a message naming them, before any load. (The
-- scenarios themselves run in ctest's loadtest_smoke.)
local S = require "integration.support.server"

local function loadtest(args)
    local argv = { "luajit", "bench/loadtest.lua" }
    for _, a in ipairs(args) do
        argv[#argv + 1] = a
    end
    return S.run(argv, { timeout = 10 })
end

describe("bench/loadtest.lua #integration", function()
    it("refuses a count that is not a whole number from 1 up to its ceiling", function()
        for _, case in ipairs({
            { "--duration", "0" }, { "--duration", "0x10" }, { "--duration", "1e1" },
            { "--duration", "86401" }, { "--connections", "-1" }, { "--connections", "2.5" },
            { "--rate", "100000000000000000000" }, { "--rate", "nan" }, { "--rate" },
        }) do
            local code, _, err = loadtest(case)
            local what = table.concat(case, " ")
            assert.are.equal(2, code, what)
            assert.is_truthy(err:find(case[1] .. " needs a whole number from 1 to", 1, true), what .. ": " .. err)
        end
    end)

    it("refuses an unknown scenario or option", function()
        local code, _, err = loadtest({ "hello", "helo" })
        assert.are.equal(2, code)
        assert.is_truthy(err:find("unknown scenario helo", 1, true), err)
        code, _, err = loadtest({ "--fast" })
        assert.are.equal(2, code)
        assert.is_truthy(err:find("unknown option --fast", 1, true), err)
    end)

    it("checks a thresholds file before running, down to a tolerance's keys", function()
        local dir = S.tmpdir()
        local cases = {
            { "return { hello = { passed_as_predicted = { tolerance = 0.1, tolerence = 1 } } }",
              "hello.passed_as_predicted: unknown key tolerence (only tolerance)" },
            { "return { hello = { max_p99 = 5 } }", "hello: unknown threshold max_p99" },
            { "return { helo = { max_p99_ms = 5 } }", "unknown scenario helo" },
            { "return { hello = { max_p99_ms = 0/0 } }", "hello.max_p99_ms must be a finite number or false" },
            { "return {", "expected" },
        }
        for i, case in ipairs(cases) do
            local file = ("%s/t%d.lua"):format(dir, i)
            S.write_file(file, case[1])
            local code, _, err = loadtest({ "--thresholds", file, "hello" })
            assert.are.equal(2, code, case[1])
            assert.is_truthy(err:find(case[2], 1, true), case[1] .. ": " .. err)
            assert.is_truthy(err:find(file, 1, true), "names the file: " .. err)
        end
    end)
end)
