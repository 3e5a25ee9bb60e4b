#include "operandplot.h"

#include "explorerweights.h"

#include <QFontMetricsF>
#include <QPainter>

#include <algorithm>
#include <cmath>

namespace cs::app {

namespace {

// Room for the axes: the rows' ticks on the left, the columns' on top, the colour bar right.
constexpr double kLeft = 34, kTop = 30, kRight = 58, kBottom = 6;

// About `wanted` tick indices out of n, at round steps (1, 2, 5, 10, ...).
std::vector<int> tickIndices(int n, int wanted)
{
    std::vector<int> out;
    if (n <= 0)
        return out;
    int step = 1;
    for (int base = 1; n / step > wanted; base *= 10)
        for (int m : { 1, 2, 5 })
            if (n / step > wanted)
                step = m * base;
    for (int i = 0; i < n; i += step)
        out.push_back(i);
    return out;
}

} // namespace

OperandPlot::OperandPlot(QQuickItem* parent)
    : QQuickPaintedItem(parent)
{
    setAntialiasing(true);
    connect(this, &OperandPlot::axesChanged, this, [this] { update(); });
    connect(this, &QQuickItem::widthChanged, this, &OperandPlot::imageChanged);
    connect(this, &QQuickItem::heightChanged, this, &OperandPlot::imageChanged);
}

void OperandPlot::setImage(const QImage& image)
{
    m_image = image;
    Q_EMIT imageChanged();
    update();
}

QRectF OperandPlot::plotRect() const
{
    const double w = std::max(0.0, width() - kLeft - kRight);
    const double h = std::max(0.0, height() - kTop - kBottom);
    if (m_image.isNull())
        return QRectF(kLeft, kTop, w, h);
    // Square cells, as large as fit.
    const double cell = std::min(w / m_image.width(), h / m_image.height());
    return QRectF(kLeft, kTop, cell * m_image.width(), cell * m_image.height());
}

QPointF OperandPlot::cellCenter(int row, int column) const
{
    const QRectF r = plotRect();
    if (m_image.isNull())
        return r.center();
    return QPointF(
        r.left() + (column + 0.5) * r.width() / m_image.width(), r.top() + (row + 0.5) * r.height() / m_image.height());
}

void OperandPlot::paint(QPainter* painter)
{
    if (m_image.isNull())
        return;
    const QRectF r = plotRect();
    painter->setRenderHint(QPainter::SmoothPixmapTransform, false);
    painter->drawImage(r, m_image);
    painter->setPen(QPen(m_line, 1));
    painter->setBrush(Qt::NoBrush);
    painter->drawRect(r);

    QFont font = painter->font();
    font.setPixelSize(10);
    painter->setFont(font);
    const QFontMetricsF metrics(font);
    painter->setPen(m_text);
    const int rows = m_image.height(), cols = m_image.width();
    // b along the top, a down the left.
    for (int j : tickIndices(cols, std::max(2, int(r.width() / 36)))) {
        const double x = r.left() + (j + 0.5) * r.width() / cols;
        const QString text = m_b.value(j).toString();
        painter->drawText(QPointF(x - metrics.horizontalAdvance(text) / 2, r.top() - 4), text);
    }
    for (int i : tickIndices(rows, std::max(2, int(r.height() / 24)))) {
        const double y = r.top() + (i + 0.5) * r.height() / rows;
        const QString text = m_a.value(i).toString();
        painter->drawText(QPointF(r.left() - 4 - metrics.horizontalAdvance(text), y + metrics.ascent() / 2 - 1), text);
    }
    font.setBold(true);
    painter->setFont(font);
    painter->drawText(QPointF(r.center().x() - 3, r.top() - 17), QStringLiteral("b"));
    painter->drawText(QPointF(4, r.top() - 4), QStringLiteral("a"));

    // The colour bar: the grid's range, largest on top.
    const QRectF bar(r.right() + 10, r.top(), 10, r.height());
    for (int y = 0; y < int(bar.height()); ++y) {
        painter->setPen(QColor(viridis(1.0 - y / std::max(1.0, bar.height() - 1))));
        painter->drawLine(QPointF(bar.left(), bar.top() + y + 0.5), QPointF(bar.right(), bar.top() + y + 0.5));
    }
    font.setBold(false);
    painter->setFont(font);
    painter->setPen(m_text);
    painter->drawText(QPointF(bar.right() + 3, bar.top() + metrics.ascent()), QString::number(m_max, 'g', 3));
    painter->drawText(QPointF(bar.right() + 3, bar.bottom()), QString::number(m_min, 'g', 3));
}

} // namespace cs::app
