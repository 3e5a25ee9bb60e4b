#pragma once
// The operand plot of one feature (docs/ARCHITECTURE.md §7.5): its activation over a sweep's
// grid as a heat map, rows a (top to bottom), columns b (left to right), viridis from the
// grid's smallest value to its largest, with axis ticks and a colour bar. The grid comes as an
// image with one pixel per cell (ExplorerWeights::operandImage), drawn scaled without
// smoothing: one drawImage for 10,000 cells, not an item per cell.

#include <QColor>
#include <QImage>
#include <QQuickPaintedItem>
#include <QRectF>
#include <QVariantList>
#include <QtQml/qqmlregistration.h>

namespace cs::app {

class OperandPlot : public QQuickPaintedItem {
    Q_OBJECT
    QML_ELEMENT
    Q_PROPERTY(QImage image READ image WRITE setImage NOTIFY imageChanged)
    Q_PROPERTY(QVariantList aValues MEMBER m_a NOTIFY axesChanged) // the rows' values
    Q_PROPERTY(QVariantList bValues MEMBER m_b NOTIFY axesChanged) // the columns' values
    Q_PROPERTY(double minValue MEMBER m_min NOTIFY axesChanged)
    Q_PROPERTY(double maxValue MEMBER m_max NOTIFY axesChanged)
    Q_PROPERTY(QColor textColor MEMBER m_text NOTIFY axesChanged)
    Q_PROPERTY(QColor lineColor MEMBER m_line NOTIFY axesChanged)
    Q_PROPERTY(QRectF plotRect READ plotRect NOTIFY imageChanged) // the cells' area, item coordinates
public:
    explicit OperandPlot(QQuickItem* parent = nullptr);

    QImage image() const { return m_image; }
    void setImage(const QImage& image);
    QRectF plotRect() const;
    // The centre of cell (row, column) in item coordinates (tests pick its pixel).
    Q_INVOKABLE QPointF cellCenter(int row, int column) const;

    void paint(QPainter* painter) override;

Q_SIGNALS:
    void imageChanged();
    void axesChanged();

private:
    QImage m_image;
    QVariantList m_a, m_b;
    double m_min = 0, m_max = 0;
    QColor m_text = Qt::black;
    QColor m_line = Qt::gray;
};

} // namespace cs::app
