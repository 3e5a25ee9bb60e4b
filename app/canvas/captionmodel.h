#pragma once
// The captioned nodes of a canvas's scene, in item coordinates, for the QML caption overlay
// (GraphView.qml): one row per node with a caption, at most kMaxCaptions. Reset on a new scene;
// on a view change the positions change in place (dataChanged on x, y, radius).

#include "canvasscene.h"

#include <QAbstractListModel>
#include <QtQml/qqmlregistration.h>

#include <memory>
#include <vector>

namespace cs::app {

class CaptionModel : public QAbstractListModel {
    Q_OBJECT
    QML_ANONYMOUS

public:
    enum Role {
        TextRole = Qt::UserRole + 1, // "text": the caption
        XRole, // "x": the node centre in item coordinates (px)
        YRole, // "y"
        SlotRole, // "slot": the node's scene slot
        RadiusRole, // "radius": the node's radius in px at the current zoom
        // "shown": false for a caption that would overlap one placed before it (the selected
        // node's first, then pinned nodes', then the rest) or the axis strips; captions only.
        ShownRole,
    };
    static constexpr int kMaxCaptions = 500;

    // What the rows are: node captions, or the axis ticks of the scene (CanvasScene::columns
    // with x at the column's centre and radius its half width; CanvasScene::rows with y at the
    // row's centre and radius its half height). Ticks have slot -1.
    enum class Kind { Captions, Columns, Rows };

    explicit CaptionModel(QObject* parent = nullptr, Kind kind = Kind::Captions);

    int rowCount(const QModelIndex& parent = QModelIndex()) const override;
    QVariant data(const QModelIndex& index, int role) const override;
    QHash<int, QByteArray> roleNames() const override;

    void setScene(const std::shared_ptr<const CanvasScene>& scene);
    // item = (scene - center) * zoom + (width, height) / 2
    void setView(double zoom, double centerX, double centerY, double width, double height);
    // Pixels along the left and bottom edges that other items cover (the axis strips).
    void setReserved(double left, double bottom);
    // The pixel size the view draws captions at (for their estimated widths).
    static constexpr int kPixelSize = 11;
    static constexpr double kMaxWidth = 220; // GraphView.qml elides captions past this

private:
    struct Row {
        int slot;
        QString text;
        double x, y, radius; // scene units
        int priority = 0; // lower is placed first
        double textWidth = 0; // px
        bool shown = true;
    };
    std::vector<Row> m_rows;
    double m_reservedLeft = 0, m_reservedBottom = 0;
    void placeCaptions(); // sets Row::shown
    Kind m_kind = Kind::Captions;
    double m_zoom = 1, m_centerX = 0, m_centerY = 0, m_width = 0, m_height = 0;
};

} // namespace cs::app
