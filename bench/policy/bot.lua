-- Benchmark bot policy: requests are counted (the check runs), never refused.
local M = { window = 10, threshold = 1000000000, retry_after = 60 }

function M.is_bot(_, count)
    return count > M.threshold
end

return M
