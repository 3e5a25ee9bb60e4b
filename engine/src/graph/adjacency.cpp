// The sparse direct-effect matrix (cs/graph.h, Adjacency): compressed sparse rows, shared and
// immutable, with a transposed index built once on first use.

#include "cs/error.h"
#include "cs/graph.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <numeric>
#include <string>
#include <utility>

namespace cs::graph {

struct Adjacency::Data {
    std::vector<int64_t> rowStarts; // [n + 1]
    std::vector<int32_t> columns; // [nnz]
    std::vector<float> values; // [nnz]

    // The transposed index: column s's targets are transposedStarts[s] .. [s + 1] of
    // transposedTargets (increasing). Built by the first column() call.
    mutable std::once_flag transposedOnce;
    mutable std::vector<int64_t> transposedStarts; // [n + 1]
    mutable std::vector<int32_t> transposedTargets; // [nnz]

    void buildTransposed(int64_t n) const
    {
        const int64_t nnz = static_cast<int64_t>(columns.size());
        transposedStarts.assign(static_cast<size_t>(n + 1), 0);
        for (int32_t s : columns)
            ++transposedStarts[static_cast<size_t>(s) + 1];
        for (int64_t s = 0; s < n; ++s)
            transposedStarts[s + 1] += transposedStarts[s];
        transposedTargets.resize(static_cast<size_t>(nnz));
        std::vector<int64_t> fill(transposedStarts.begin(), transposedStarts.end() - 1);
        // Rows in increasing order, so each column's targets come out increasing.
        for (int64_t t = 0; t < n; ++t)
            for (int64_t e = rowStarts[t]; e < rowStarts[t + 1]; ++e) {
                transposedTargets[fill[static_cast<size_t>(columns[e])]++] = static_cast<int32_t>(t);
            }
    }
};

Adjacency::Adjacency()
    : Adjacency(0)
{
}

Adjacency::Adjacency(int64_t n)
    : m_n(n)
{
    if (n < 0 || n > std::numeric_limits<int32_t>::max())
        throw Error("adjacency: " + std::to_string(n) + " is not a node count");
    auto data = std::make_shared<Data>();
    data->rowStarts.assign(static_cast<size_t>(n + 1), 0);
    m_data = std::move(data);
}

Adjacency::Adjacency(int64_t n, std::vector<int64_t> rowStarts, std::vector<int32_t> columns, std::vector<float> values)
    : m_n(n)
{
    if (n < 0 || n > std::numeric_limits<int32_t>::max())
        throw Error("adjacency: " + std::to_string(n) + " is not a node count");
    if (static_cast<int64_t>(rowStarts.size()) != n + 1)
        throw Error("adjacency: " + std::to_string(rowStarts.size()) + " row starts for " + std::to_string(n)
            + " rows (expected " + std::to_string(n + 1) + ")");
    if (columns.size() != values.size())
        throw Error("adjacency: " + std::to_string(columns.size()) + " columns but " + std::to_string(values.size())
            + " values");
    const auto nnz = static_cast<int64_t>(columns.size());
    if (rowStarts[0] != 0 || rowStarts[static_cast<size_t>(n)] != nnz)
        throw Error("adjacency: the row starts must run from 0 to the entry count " + std::to_string(nnz));
    for (int64_t t = 0; t < n; ++t) {
        const int64_t begin = rowStarts[t], end = rowStarts[t + 1];
        if (end < begin)
            throw Error("adjacency: row " + std::to_string(t) + " ends before it starts");
        // A later row start that comes back down is caught at that row; this row's entries are
        // read now, so its end must already lie within them (fuzz_csgraph).
        if (end > nnz)
            throw Error("adjacency: row " + std::to_string(t) + " ends at entry " + std::to_string(end) + ", past the "
                + std::to_string(nnz) + " entries");
        for (int64_t e = begin; e < end; ++e) {
            if (columns[e] < 0 || columns[e] >= n)
                throw Error("adjacency: row " + std::to_string(t) + " has column " + std::to_string(columns[e])
                    + ", outside [0, " + std::to_string(n) + ")");
            if (e > begin && columns[e] <= columns[e - 1])
                throw Error("adjacency: the columns of row " + std::to_string(t) + " are not strictly increasing");
        }
    }
    auto data = std::make_shared<Data>();
    if (std::find(values.begin(), values.end(), 0.0f) == values.end()) {
        data->rowStarts = std::move(rowStarts);
        data->columns = std::move(columns);
        data->values = std::move(values);
    } else {
        // Zeros are not entries: compact in place.
        int64_t out = 0;
        for (int64_t t = 0; t < n; ++t) {
            const int64_t begin = rowStarts[t], end = rowStarts[t + 1];
            rowStarts[t] = out;
            for (int64_t e = begin; e < end; ++e)
                if (values[e] != 0.0f) {
                    columns[out] = columns[e];
                    values[out] = values[e];
                    ++out;
                }
        }
        rowStarts[n] = out;
        columns.resize(static_cast<size_t>(out));
        values.resize(static_cast<size_t>(out));
        columns.shrink_to_fit();
        values.shrink_to_fit();
        data->rowStarts = std::move(rowStarts);
        data->columns = std::move(columns);
        data->values = std::move(values);
    }
    m_data = std::move(data);
}

Adjacency Adjacency::fromDense(const at::Tensor& dense)
{
    if (!dense.defined() || dense.dim() != 2 || dense.size(0) != dense.size(1))
        throw Error("adjacency: a dense matrix must be [n, n]");
    if (!at::isFloatingType(dense.scalar_type()))
        throw Error("adjacency: a dense matrix must hold floating-point values");
    const int64_t n = dense.size(0);
    const at::Tensor a = dense.to(at::kCPU, at::kFloat).contiguous();
    const float* p = a.data_ptr<float>();
    std::vector<int64_t> rowStarts(static_cast<size_t>(n + 1), 0);
    std::vector<int32_t> columns;
    std::vector<float> values;
    for (int64_t t = 0; t < n; ++t) {
        const float* row = p + t * n;
        for (int64_t s = 0; s < n; ++s)
            if (row[s] != 0.0f) {
                columns.push_back(static_cast<int32_t>(s));
                values.push_back(row[s]);
            }
        rowStarts[t + 1] = static_cast<int64_t>(columns.size());
    }
    return Adjacency(n, std::move(rowStarts), std::move(columns), std::move(values));
}

at::Tensor Adjacency::dense() const
{
    at::Tensor out = at::zeros({ m_n, m_n }, at::kFloat);
    float* p = out.data_ptr<float>();
    for (int64_t t = 0; t < m_n; ++t) {
        const Row r = row(t);
        for (int64_t k = 0; k < r.size; ++k)
            p[t * m_n + r.columns[k]] = r.values[k];
    }
    return out;
}

int64_t Adjacency::nnz() const
{
    return static_cast<int64_t>(m_data->columns.size());
}

Adjacency::Row Adjacency::row(int64_t t) const
{
    const int64_t begin = m_data->rowStarts[static_cast<size_t>(t)];
    const int64_t end = m_data->rowStarts[static_cast<size_t>(t) + 1];
    return { m_data->columns.data() + begin, m_data->values.data() + begin, begin, end - begin };
}

Adjacency::Column Adjacency::column(int64_t s) const
{
    const Data& d = *m_data;
    std::call_once(d.transposedOnce, [&] { d.buildTransposed(m_n); });
    const int64_t begin = d.transposedStarts[static_cast<size_t>(s)];
    const int64_t end = d.transposedStarts[static_cast<size_t>(s) + 1];
    return { d.transposedTargets.data() + begin, end - begin };
}

int64_t Adjacency::find(int64_t t, int64_t s) const
{
    if (t < 0 || t >= m_n || s < 0 || s >= m_n)
        return -1;
    const Row r = row(t);
    const int32_t* end = r.columns + r.size;
    const int32_t* it = std::lower_bound(r.columns, end, static_cast<int32_t>(s));
    return it != end && *it == s ? r.begin + (it - r.columns) : -1;
}

float Adjacency::value(int64_t t, int64_t s) const
{
    const int64_t e = find(t, s);
    return e < 0 ? 0.0f : m_data->values[static_cast<size_t>(e)];
}

const int64_t* Adjacency::rowStarts() const
{
    return m_data->rowStarts.data();
}

const int32_t* Adjacency::columns() const
{
    return m_data->columns.data();
}

const float* Adjacency::values() const
{
    return m_data->values.data();
}

int64_t Adjacency::rowOf(int64_t entry) const
{
    const auto& starts = m_data->rowStarts;
    // The last row whose start is <= entry (empty rows share their start with the next).
    return static_cast<int64_t>(std::upper_bound(starts.begin(), starts.end(), entry) - starts.begin()) - 1;
}

bool Adjacency::operator==(const Adjacency& other) const
{
    if (m_n != other.m_n)
        return false;
    if (m_data == other.m_data)
        return true;
    const Data& a = *m_data;
    const Data& b = *other.m_data;
    return a.rowStarts == b.rowStarts && a.columns == b.columns && a.values.size() == b.values.size()
        && (a.values.empty() || std::memcmp(a.values.data(), b.values.data(), a.values.size() * sizeof(float)) == 0);
}

AdjacencyBuilder::AdjacencyBuilder(int64_t n)
    : m_n(n)
{
    if (n < 0 || n > std::numeric_limits<int32_t>::max())
        throw Error("adjacency: " + std::to_string(n) + " is not a node count");
    m_offset.assign(static_cast<size_t>(n), -1);
    m_length.assign(static_cast<size_t>(n), 0);
}

void AdjacencyBuilder::setRow(int64_t t, const int32_t* columns, const float* values, int64_t count)
{
    if (t < 0 || t >= m_n)
        throw Error("adjacency: row " + std::to_string(t) + " is outside [0, " + std::to_string(m_n) + ")");
    if (m_offset[static_cast<size_t>(t)] >= 0)
        throw Error("adjacency: row " + std::to_string(t) + " is given twice");
    const auto start = static_cast<int64_t>(m_columns.size());
    bool sorted = true;
    for (int64_t k = 0; k < count; ++k) {
        if (values[k] == 0.0f)
            continue;
        if (columns[k] < 0 || columns[k] >= m_n)
            throw Error("adjacency: row " + std::to_string(t) + " has column " + std::to_string(columns[k])
                + ", outside [0, " + std::to_string(m_n) + ")");
        if (static_cast<int64_t>(m_columns.size()) > start && columns[k] <= m_columns.back())
            sorted = false;
        m_columns.push_back(columns[k]);
        m_values.push_back(values[k]);
    }
    const int64_t length = static_cast<int64_t>(m_columns.size()) - start;
    if (!sorted) {
        std::vector<int64_t> order(static_cast<size_t>(length));
        std::iota(order.begin(), order.end(), 0);
        int32_t* c = m_columns.data() + start;
        float* v = m_values.data() + start;
        std::sort(order.begin(), order.end(), [c](int64_t a, int64_t b) { return c[a] < c[b]; });
        std::vector<int32_t> cs(static_cast<size_t>(length));
        std::vector<float> vs(static_cast<size_t>(length));
        for (int64_t k = 0; k < length; ++k) {
            cs[k] = c[order[k]];
            vs[k] = v[order[k]];
        }
        for (int64_t k = 0; k < length; ++k) {
            if (k > 0 && cs[k] == cs[k - 1]) {
                m_columns.resize(static_cast<size_t>(start));
                m_values.resize(static_cast<size_t>(start));
                throw Error(
                    "adjacency: row " + std::to_string(t) + " names column " + std::to_string(cs[k]) + " twice");
            }
            c[k] = cs[k];
            v[k] = vs[k];
        }
    }
    m_offset[static_cast<size_t>(t)] = start;
    m_length[static_cast<size_t>(t)] = length;
}

void AdjacencyBuilder::setRow(int64_t t, const std::vector<int32_t>& columns, const std::vector<float>& values)
{
    if (columns.size() != values.size())
        throw Error("adjacency: row " + std::to_string(t) + " has " + std::to_string(columns.size()) + " columns but "
            + std::to_string(values.size()) + " values");
    setRow(t, columns.data(), values.data(), static_cast<int64_t>(columns.size()));
}

Adjacency AdjacencyBuilder::build()
{
    const int64_t n = m_n;
    std::vector<int64_t> rowStarts(static_cast<size_t>(n + 1), 0);
    for (int64_t t = 0; t < n; ++t)
        rowStarts[t + 1] = rowStarts[t] + m_length[t];
    const int64_t nnz = rowStarts[n];
    bool inOrder = true; // rows given in row order, one after another: the arrays are already CSR
    for (int64_t t = 0; t < n && inOrder; ++t)
        inOrder = m_length[t] == 0 || m_offset[t] == rowStarts[t];
    std::vector<int32_t> columns;
    std::vector<float> values;
    if (inOrder) {
        columns = std::move(m_columns);
        values = std::move(m_values);
        columns.shrink_to_fit(); // no spare capacity from the appends
        values.shrink_to_fit();
    } else {
        columns.resize(static_cast<size_t>(nnz));
        values.resize(static_cast<size_t>(nnz));
        for (int64_t t = 0; t < n; ++t) {
            if (m_length[t] == 0)
                continue;
            std::copy_n(m_columns.data() + m_offset[t], m_length[t], columns.data() + rowStarts[t]);
            std::copy_n(m_values.data() + m_offset[t], m_length[t], values.data() + rowStarts[t]);
        }
        std::vector<int32_t>().swap(m_columns);
        std::vector<float>().swap(m_values);
    }
    m_offset.assign(static_cast<size_t>(n), -1);
    m_length.assign(static_cast<size_t>(n), 0);
    return Adjacency(n, std::move(rowStarts), std::move(columns), std::move(values));
}

} // namespace cs::graph
